"""arforge.generators"""
