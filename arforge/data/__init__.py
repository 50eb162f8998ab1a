"""arforge.data"""
