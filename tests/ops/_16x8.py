"""The 16x8 twin of a CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED test model.

ModelBuilder.to_int16 makes the activations int16 (zero point 0, scale / 256) and leaves the
constants; a weighted op also needs its bias in the new scale s_in / 256 * s_w (LiteRT checks
it), as int64 (what both interpreters take) or int32 (TFLite Micro's int32-accumulator path).
The bias values are multiplied by `bias_mult` (256 keeps their share of the accumulator);
`bias_big` pushes them far beyond int32.
"""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as S

from dmxgen.testing.tflite_builder import ModelBuilder

TYPES = {"int64": (S.TensorType.INT64, np.int64), "int32": (S.TensorType.INT32, np.int32)}


def to_16x8(m: ModelBuilder, bias: str = "int64", bias_mult: int = 256, bias_big: int = 0) -> ModelBuilder:
    """`bias_big`: added to the even channels' bias values and taken from the odd ones'."""
    m.to_int16()
    kind, np_type = TYPES[bias]
    for t in m.sg.tensors:
        if t.type != S.TensorType.INT32 or t.buffer == 0 or t.quantization is None:
            continue  # not a bias (shape tensors have no quantization)
        buf = m.model.buffers[t.buffer]
        values = np.frombuffer(bytes(buf.data), np.int32).astype(np.int64) * bias_mult
        values += bias_big * np.where(np.arange(values.size) % 2 == 0, 1, -1)
        if bias == "int32":
            assert np.abs(values).max() < 2**31, "an int32 bias must fit int32"
        buf.data = values.astype(np_type).tobytes()
        t.type = kind
        t.quantization.scale = [s / 256 for s in t.quantization.scale]
    return m


def loaded_case(case, tmp_path, semantics: str = "tflm"):
    """`case` with its model loaded under `semantics`: a Case holding the Graph, for check_targets,
    which loads file cases under LiteRT's semantics (an int32 bias is TFLite Micro's only)."""
    from dataclasses import replace

    from dmxgen.frontends.tflite import load_tflite

    from ._harness import save

    path = save(case.m, tmp_path, case.inputs, case.outputs, name=f"loaded_{semantics}")
    return replace(case, m=load_tflite(path, semantics=semantics), inputs=[], outputs=[])
