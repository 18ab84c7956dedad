"""med42_utils: the tested helpers behind the Med42-v2 reproduction notebooks.

One module (or subpackage) per stage; notebooks stay thin and call these.
"""
__version__ = "0.1.0"
