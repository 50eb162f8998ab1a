"""arforge.interop"""
