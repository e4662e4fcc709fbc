"""gather: TFLite's GATHER by run-time int32 / int64 indices (reference_ops::Gather), int8 or int16 codes.

The codes are moved, not computed, so the output shares the params' grid (the frontend checks it).
The params may be a constant (an embedding table) or an activation. TFLite's GATHER of constant
indices is lowered to strided slices by the frontend (frontends/tflite_ops/moves.py) and never
reaches this kind. An index outside [0, axis size) is refused by the reference, as LiteRT's Eval
fails on it; the C and HLS kernels never read out of bounds: they fill that slice with the zero point,
and the C's dmx_model_run returns DMX_ERROR_INDEX (docs/gather.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DmxError
from . import register
from ._spec import ACTIVATION, OpSpec

INDEX_DTYPES = ("int32", "int64")


@dataclass(frozen=True)
class GatherAttrs:
    axis: int  # non-negative: the params' axis the indices pick along
    batch_dims: int = 0  # non-negative: leading dims params and indices share, gathered pairwise


def _sizes(shape, ishape, axis: int, bd: int) -> dict:
    size = lambda s: int(np.prod(s, dtype=np.int64)) if len(s) else 1  # noqa: E731
    return {"batches": size(shape[:bd]), "outer": size(shape[bd:axis]), "axis_size": int(shape[axis]),
            "inner": size(shape[axis + 1:]), "coords": size(ishape[bd:])}


def index_bound(graph, name: str) -> int | None:
    """For a tensor read only as gather indices, the size of the smallest axis it picks along (the valid
    indices are below it): the C backend's test of an index input, the random test vectors' range. Else None."""
    users = graph.consumers(name)
    if not users or not all(getattr(op.spec, "reads_indices", False) and op.inputs.index(name) == 1 for op in users):
        return None
    return min(graph.tensors[op.inputs[0]].shape[op.a.axis] for op in users)


@register
class Gather(OpSpec):
    """out[b, o, c, i] = params[b, o, indices[b, c], i] over params as [batches, outer, axis_size, inner]."""

    kind = "gather"
    summary = "rows of int8 / int16 params picked by run-time int32 / int64 indices (embedding lookup)"
    Attrs = GatherAttrs
    targets = ("c", "hls", "tflite")
    inputs = (ACTIVATION, ACTIVATION)  # params (a constant table or computed), indices
    dtypes = ("int8", "int16")
    reads_indices = True  # the C backend passes the indices as int32_t / int64_t (backends/c_layers.py ref)
    reports_status = True  # the C kernel returns the number of bad indices; dmx_model_run returns DMX_ERROR_INDEX

    def check(self, op, ins, out):
        params, idx = ins
        shape, ishape, a = params.shape, idx.shape, op.a
        if params.dtype not in self.dtypes:
            return f"params {params.name!r} are {params.dtype}; gather moves int8 or int16 codes"
        if idx.dtype not in INDEX_DTYPES:
            return f"indices {idx.name!r} are {idx.dtype}; GATHER takes int32 or int64 indices"
        if out.dtype != params.dtype:
            return f"output is {out.dtype}, the params {params.dtype}; gather copies codes"
        if not 0 <= a.axis < len(shape):
            return f"axis {a.axis} is outside a {len(shape)}-D params tensor"
        if not 0 <= a.batch_dims <= min(a.axis, len(ishape)):
            return (f"batch_dims {a.batch_dims} must lie in [0, axis {a.axis}] and within the indices' "
                    f"{len(ishape)} dims")
        if shape[:a.batch_dims] != ishape[:a.batch_dims]:
            return f"the {a.batch_dims} batch dims of params {list(shape)} and indices {list(ishape)} differ"
        want = shape[:a.axis] + ishape[a.batch_dims:] + shape[a.axis + 1:]
        if out.shape != want:
            return f"output shape {list(out.shape)} should be {list(want)}"
        return None

    def kernel_params(self, graph, op):
        params, idx = (graph.tensors[n] for n in op.inputs)
        out = graph.tensors[op.outputs[0]]
        p = _sizes(params.shape, idx.shape, op.a.axis, op.a.batch_dims)
        return {**p, "wide": int(idx.dtype == "int64"), "zero_point": int(out.quant.zp) if out.quant else 0}

    def reference(self, op, args, out_t):
        params, idx = args[0], np.asarray(args[1]).astype(np.int64)
        p = _sizes(params.shape, idx.shape, op.a.axis, op.a.batch_dims)
        bad = (idx < 0) | (idx >= p["axis_size"])
        if bad.any():  # LiteRT's Eval fails (kTfLiteError): there is no golden to match
            raise DmxError(f"op {op.name!r} (gather): index {int(idx[bad].reshape(-1)[0])} is outside the "
                           f"{p['axis_size']} entries of axis {op.a.axis}; LiteRT fails on it at invoke, the "
                           "generated C fills its slice with the zero point and returns DMX_ERROR_INDEX")
        table = params.reshape(p["batches"], p["outer"], p["axis_size"], p["inner"])
        rows = idx.reshape(p["batches"], p["coords"])
        out = np.stack([table[b][:, rows[b], :] for b in range(p["batches"])])  # [batches, outer, coords, inner]
        return out.reshape(out_t.shape)
