"""arforge.samplers"""
