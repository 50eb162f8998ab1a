"""arforge.train"""
