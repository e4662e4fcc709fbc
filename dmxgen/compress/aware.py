"""aware(): make torch.nn layers created afterwards dmxgen-aware (optional, as in mltools).

Aware layers are subclasses of the torch.nn classes (isinstance still holds,
behaviour and state dict are unchanged) that `Model.transform` labels with
the settings the config gave them (`layer.dmx_config`), and that the tracer
always treats as single layers. `Model` works the same on nets built without
aware(); it only makes the settings visible on the user's own modules.
"""
from __future__ import annotations

from types import SimpleNamespace

from torch import nn

PATCHED = ("Linear", "Conv1d", "Conv2d", "BatchNorm1d", "BatchNorm2d", "ReLU", "ReLU6", "Hardtanh", "GELU",
           "SiLU", "Tanh", "Sigmoid", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d",
           "AdaptiveAvgPool2d")
_ORIGINAL: dict[str, type] = {name: getattr(nn, name) for name in PATCHED}
# The torch.nn classes as they were, whatever aware() did since: dmxgen's own isinstance checks use these,
# because `nn.Linear` read while aware() is on is the aware subclass, which plain layers are not.
torch_nn = SimpleNamespace(**_ORIGINAL)


def _aware_class(base: type) -> type:
    def extra_repr(self) -> str:
        text = base.extra_repr(self)
        cfg = getattr(self, "dmx_config", None)
        if cfg is None or not cfg.set_fields:
            return text
        return f"{text}, dmx: {', '.join(sorted(cfg.set_fields))}"

    return type(base.__name__, (base,), {"_dmx_aware": True, "dmx_config": None, "extra_repr": extra_repr,
                                         "__module__": "dmxgen.compress.aware",
                                         "__doc__": f"dmxgen-aware {base.__name__}."})


AWARE: dict[str, type] = {name: _aware_class(cls) for name, cls in _ORIGINAL.items()}


class _Undo:
    """Returned by aware(); `with aware(): ...` restores torch.nn on exit."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        aware(False)


def aware(enable: bool = True) -> _Undo:
    """Replace (or, with False, restore) the torch.nn layer classes listed in PATCHED."""
    for name in PATCHED:
        setattr(nn, name, AWARE[name] if enable else _ORIGINAL[name])
    return _Undo()


def is_aware(module: nn.Module) -> bool:
    return getattr(type(module), "_dmx_aware", False)


def torch_class(module: nn.Module) -> type:
    """The module's torch.nn class: an aware layer's base, any other module's own type."""
    return type(module).__mro__[1] if is_aware(module) else type(module)
