"""arforge.eval"""
