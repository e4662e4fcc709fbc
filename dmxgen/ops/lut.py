"""lut: an int8 elementwise lookup table, out = table[in + 128] (any activation of an int8 tensor).

The TFLite frontend maps int8 LOGISTIC, TANH, HARD_SWISH, the RELUs, ELU, ABS, RSQRT and NEG
to it, the table being the kernel's own algorithm run on the 256 codes (frontends/tflite_ops/
tables.py); dmxgen.passes and the torch frontend emit it for LOGISTIC-like activations and for
float islands folded into one table.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import register
from ._spec import Ints, OpSpec


@dataclass(frozen=True)
class LutAttrs:
    table: Ints  # 256 int8 codes, indexed by the input code + 128


@register
class Lut(OpSpec):
    kind = "lut"
    summary = "int8 elementwise lookup table: out = table[in + 128] (any activation of an int8 tensor)"
    Attrs = LutAttrs
    targets = ("c", "hls", "tflite", "torch")  # and passes/ (a float island as a table)

    def inplace(self, op) -> bool:
        return True

    def check(self, op, ins, out):
        if ins[0].shape != out.shape:
            return f"input {list(ins[0].shape)} and output {list(out.shape)} differ"
        if np.size(op.a.table) != 256:
            return f"table has {np.size(op.a.table)} entries, expected 256"
        return None

    def kernel_params(self, graph, op):
        """The HLS kernel's constants (templates/hls/kernels/dmx_lut.h); the C kernel is registered
        by hand in backends/c_layers.py, whose generated code this does not change."""
        return {"size": graph.tensors[op.outputs[0]].size, "table": np.asarray(op.a.table, dtype=np.int8)}

    def reference(self, op, args, out_t):
        """The input's int8 code + 128 indexes the 256-entry table."""
        return np.asarray(op.a.table, dtype=np.int8)[args[0].astype(np.int64) + 128]
