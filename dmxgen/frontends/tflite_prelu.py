"""The attrs of a prelu op from TFLite's PRELU and LEAKY_RELU (dmxgen/ops/prelu.py).

PRELU's alpha broadcasts against the input (numpy rules, TFLite's CalculateShapeForBroadcast);
every dim before alpha's first non-1 dim is a broadcast one, so the broadcast alpha is a table
that repeats along the flat tensor, with the period of the dims from there on.
"""
from __future__ import annotations

import numpy as np

from ..errors import DmxError
from ..graph import QuantParams, Tensor
from ..graph.quant_params import leaky_relu_params, prelu_params

MAX_BROADCAST_RANK = 4  # BroadcastPrelu4DSlow


def alpha_table(alpha: np.ndarray, shape: tuple) -> np.ndarray:
    """The codes of alpha broadcast to `shape`, one period of the flat result."""
    aligned = (1,) * (len(shape) - alpha.ndim) + tuple(alpha.shape)
    first = next((k for k, d in enumerate(aligned) if d != 1), len(shape))
    full = np.broadcast_to(alpha.reshape(aligned), shape)
    period = int(np.prod(shape[first:], dtype=np.int64))
    return np.ascontiguousarray(full.reshape(-1)[:period])


def prelu_attrs(inp: Tensor, alpha: Tensor, out: Tensor, qi: QuantParams, qa: QuantParams, qo: QuantParams,
                float32: bool) -> dict:
    if alpha.data is None:
        raise DmxError(f"alpha {alpha.name!r} must be a constant tensor")
    if qa.per_channel:
        raise DmxError(f"alpha {alpha.name!r} is quantized per channel; TFLite's PRELU reads one scale")
    try:
        shape = np.broadcast_shapes(inp.shape, alpha.shape)
    except ValueError:
        raise DmxError(f"alpha shape {list(alpha.shape)} does not broadcast to the input's {list(inp.shape)}") from None
    if tuple(shape) != inp.shape or out.shape != inp.shape:
        raise DmxError(f"input {list(inp.shape)}, alpha {list(alpha.shape)} and output {list(out.shape)}: "
                       "the output must have the input's shape")
    if alpha.shape != inp.shape and len(inp.shape) > MAX_BROADCAST_RANK:
        raise DmxError(f"a broadcast alpha of a rank-{len(inp.shape)} input is not supported "
                       f"(TFLite broadcasts up to {MAX_BROADCAST_RANK} dims)")
    return {"input_offset": -qi.zp, "alpha_offset": -qa.zp, "output_offset": qo.zp,
            **prelu_params(qi.s, qa.s, qo.s, float32=float32),
            "alpha": alpha_table(alpha.data.astype(np.int64), inp.shape)}


def leaky_relu_attrs(alpha: float, inp: Tensor, out: Tensor, qi: QuantParams, qo: QuantParams,
                     float32: bool = True) -> dict:
    if not np.isfinite(alpha) or alpha < 0:
        raise DmxError(f"LEAKY_RELU alpha {alpha:g} is not supported (only a finite alpha >= 0)")
    if out.shape != inp.shape:
        raise DmxError(f"output shape {list(out.shape)} should be the input's {list(inp.shape)}")
    # x * 1 through the alpha multiplier: QuantizeLeakyRelu to the bit
    return {"input_offset": -qi.zp, "alpha_offset": 0, "output_offset": qo.zp,
            **leaky_relu_params(qi.s, alpha, qo.s, float32), "alpha": np.ones(1, np.int64)}
