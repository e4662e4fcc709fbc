"""dmxgen: integer-only C and HLS C++ from compressed models, checked to the bit.

The PyTorch-side API (`aware`, `Model`, `save`, `load`, ...) lives in
dmxgen.api and is imported on first use, so the command line and the
TFLite path never import torch.
"""
__version__ = "0.1.0"

_API = {"aware", "Model", "save", "load", "to_graph", "register_function", "reference_outputs"}


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'dmxgen' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))
