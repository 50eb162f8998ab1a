"""arforge.kernels"""
