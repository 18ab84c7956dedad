"""Typed params for every stage, loaded from params/<size>.yaml."""
from .loader import ParamsError, load_params, params_hash, valid_sizes
from .schema import Params

__all__ = ["Params", "ParamsError", "load_params", "params_hash", "valid_sizes"]
