"""The mappings of TFLite operators to op kinds, one module per operator family.

Importing this package imports every module in it (sorted by name); each maps its operators
with `@tflite_op` (frontends/tflite_registry.py) as functions `(reader, op, ins, outs)`, which
use the reader's helpers (`reader.g`, `reader.options`, `reader._need_quant`, `reader._int8_io`).
"""
from __future__ import annotations

import importlib
import pkgutil


def _import_families() -> None:
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_families()
