"""<kind>: one line on what the op computes and which TFLite kernel it follows to the bit.

Copy this file to dmxgen/ops/<kind>.py (the file name is the kind), replace
the placeholders and delete the comments that no longer help. Importing
dmxgen.ops imports every module here whose name does not start with "_",
so nothing else registers the kind. docs/adding-an-op.md lists the other
files an op needs: the frontend mappings (`@tflite_op`, the torch branch), the
C kernel templates/c/kernels/<kind>.c.j2 and the HLS kernel
templates/hls/kernels/dmx_<kind>.h (both printed from `kernel_params` below,
no backend code), and tests/ops/test_<kind>.py, whose cases run against
LiteRT / TFLite Micro and on every target listed in `targets` below.
This file is skipped by the registry because its name starts with "_".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import register  # noqa: F401  (uncomment @register below)
from ._requant import clamp  # shared tails: clamp / saturate / requantize by the output's dtype
from ._spec import ACTIVATION, OpSpec, Pair  # types the attrs validator knows: see _spec.py


@dataclass(frozen=True)
class TemplateAttrs:
    # Every integer the kernel needs, derived once by the frontends (no floats on the int8 path).
    # A field without a default is required; a misspelt, missing or mistyped key fails when the
    # Op is built, naming the op and the key. Keep the names the frontends already write.
    stride: Pair
    output_offset: int
    act_min: int
    act_max: int
    flag: int = 0  # optional attributes have a default; op.a fills it in, op.attrs stays as given


# @register  <- uncomment in the real module
class Template(OpSpec):
    kind = "template"  # the module's name
    summary = "one line for OP_KINDS and `dmxgen inspect`"
    Attrs = TemplateAttrs
    # The declared support matrix: the targets that implement the kind (ops/_support.py TARGETS:
    # "c", "c_mve", "hls", "tflite", "torch"). tests/ops/test_support.py fails when a target has
    # code for the kind that is not listed here, or a listed target has none, and
    # tests/ops/test_<kind>.py's test_<kind>_on_targets runs the cases on each one listed
    # (c: host C with sanitizers, hls: csim, c / c_mve: the M55 under QEMU).
    targets = ()
    inputs = (ACTIVATION,)  # role per input: ACTIVATION, WEIGHTS (constant, encodable), BIAS (optional)
    # HLS layers' run() takes the ACTIVATION inputs (a constant one becomes a ROM of the layer).
    # min_inputs = 1        # when trailing inputs are optional (a bias given as "")
    # variadic = True       # when the last role repeats (concat)
    # outputs = 1
    # dtypes = ("int8",)    # activation dtypes; activation_dtype() says which tensor carries it
    # weight_formats = ("dense", "csr", "dcsr")  # with a WEIGHTS input: the stored formats the kernels read
    #                                             # (repeat it in codecs/view.py SPARSE_KERNELS)

    # def inplace(self, op) -> bool:  # elementwise ops: may the output reuse a dying input's bytes?
    #     return True

    def check(self, op, ins, out) -> str | None:
        """Shapes and attrs against the tensors; the message is shown after "op NAME (KIND, output Y): "."""
        if ins[0].shape != out.shape:
            return f"output shape {list(out.shape)} should be the input's {list(ins[0].shape)}"
        return None

    def kernel_params(self, graph, op) -> dict:
        """The kernel's constants for every target: name -> int, numpy array (a table) or a
        graph.loops.Walk (a strided copy). The C struct dmx_<kind>_t and the HLS cfg print them."""
        a = op.a
        return {"size": graph.tensors[op.outputs[0]].size, "output_offset": a.output_offset,
                "act_min": a.act_min, "act_max": a.act_max}

    def reference(self, op, args, out_t) -> np.ndarray:
        """The golden kernel: input values (None for an absent optional input) -> output values.

        Read attributes through the typed view `op.a`; clamp by `out_t.dtype`, never by int8 constants.
        """
        a = op.a
        x = args[0].astype(np.int64)
        return clamp(x + a.output_offset, a.act_min, a.act_max, out_t.dtype)
