"""dmxgen: integer-only C and HLS C++ from compressed models, checked to the bit.

The PyTorch-side API (`aware`, `Model`, `save`, `load`, ...) lives in
dmxgen.api and is imported on first use, so the command line and the
TFLite path never import torch.
"""
__version__ = "0.1.0"

from . import ops as _ops  # noqa: E402,F401  registers every op kind before any Op is built

_API = {"aware", "Model", "save", "load", "to_graph", "register_function", "reference_outputs"}
_LOOP = {"compress_to_size"}  # dmxgen.compress.sparsecomp
_EARLY_EXIT = {"EarlyExit", "ExitPolicy", "train_exits", "simulate_exit", "choose_thresholds"}  # compress.early_exit


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    if name in _LOOP:
        from . import api  # noqa: F401  the loop sizes Models through their graph: load the torch frontend
        from .compress import sparsecomp

        return getattr(sparsecomp, name)
    if name in _EARLY_EXIT:
        from . import api  # noqa: F401  EarlyExit.to_graph goes through the torch frontend
        from .compress import early_exit

        return getattr(early_exit, name)
    raise AttributeError(f"module 'dmxgen' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API) + list(_LOOP) + list(_EARLY_EXIT))
