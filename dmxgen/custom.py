"""User-supplied kernels for TFLite CUSTOM operators (docs/custom-ops.md).

A plugin is a Python file the user names with `--custom-ops plugin.py`; it registers each
custom operator with both halves dmxgen needs, since a custom operator's meaning is known only
to whoever wrote it:

    from dmxgen.custom import custom_op

    @custom_op("TIMES_TWO", c_source="times_two.c")   # the C file, relative to the plugin
    def times_two(inputs, options, output):            # numpy arrays -> the output's values
        return np.clip(inputs[0].astype(np.int32) * 2, -128, 127).astype(np.int8)

Loading a plugin runs its code, as importing any Python module does: load only files you trust.
"""
from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Callable

from .errors import DmxError
from .ops.custom import C_NAME, CUSTOM_OPS, CustomOp

__all__ = ["custom_op", "load_plugins"]


def custom_op(name: str, c_source: str | Path) -> Callable:
    """Register the decorated numpy function as the reference of custom operator `name`, and
    `c_source` (relative to the calling file) as the C file defining `dmx_custom_<name>`."""
    if not isinstance(name, str) or not name:
        raise DmxError("custom_op: the operator's name (its custom_code) must be a non-empty string")
    caller = Path(inspect.stack()[1].filename).resolve().parent
    source = Path(c_source)
    source = source if source.is_absolute() else caller / source

    def decorate(fn: Callable) -> Callable:
        op = CustomOp(name, fn, source)
        if not C_NAME.match(op.ident):
            raise DmxError(f"custom operator {name!r}: its C name dmx_custom_{op.ident} is not an identifier")
        if not source.is_file():
            raise DmxError(f"custom operator {name!r}: its C source {source} does not exist")
        if name in CUSTOM_OPS and CUSTOM_OPS[name].reference is not fn:
            raise DmxError(f"custom operator {name!r} is registered twice")
        CUSTOM_OPS[name] = op
        return fn

    return decorate


def load_plugins(paths) -> list[str]:
    """Import each plugin file (it registers its operators); returns the custom operators now known."""
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise DmxError(f"--custom-ops {path}: no such file")
        spec = importlib.util.spec_from_file_location(f"dmxgen_plugin_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
        except DmxError:
            raise
        except Exception as e:  # the user's code: say where it failed, in one line
            raise DmxError(f"--custom-ops {path}: loading it failed: {type(e).__name__}: {e}") from None
    return sorted(CUSTOM_OPS)
