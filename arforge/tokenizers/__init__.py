"""arforge.tokenizers"""
