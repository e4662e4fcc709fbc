"""The integer kernels of three op kinds as torch custom ops, for the fake-quantized forward.

Each op runs the very numpy function the reference interpreter runs (graph/fixedpoint.py's
softmax_gemmlowp, ops/batch_matmul.py's batch_matmul_codes, ops/lut_interp.py's interpolate), so the fake-quantized layer and the
exported op compute their codes once, not in two implementations held equal by tests. As custom
ops with a shape-only fake they are also what torch.export records for dmxgen.save (one call each);
loading such a .pt2 needs this module imported, which `dmxgen.load` does through dmxgen.compress.
"""
from __future__ import annotations

import numpy as np
import torch

from ..graph import fixedpoint as fp
from ..ops.batch_matmul import BatchMatmulAttrs, batch_matmul_codes
from ..ops.lut_interp import interpolate


@torch.library.custom_op("dmxgen::softmax_gemmlowp", mutates_args=())
def softmax_gemmlowp(codes: torch.Tensor, input_multiplier: int, input_left_shift: int,
                     diff_min: int) -> torch.Tensor:
    """int8 codes (as int64) -> the softmax_gemmlowp op's output codes (int64), over the last dim."""
    attrs = {"input_multiplier": input_multiplier, "input_left_shift": input_left_shift, "diff_min": diff_min}
    out = fp.softmax_gemmlowp(codes.detach().cpu().numpy().astype(np.int64), attrs)
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.int64))


@softmax_gemmlowp.register_fake
def _(codes, input_multiplier, input_left_shift, diff_min):
    return torch.empty_like(codes, dtype=torch.int64)


@torch.library.custom_op("dmxgen::batch_matmul", mutates_args=())
def batch_matmul(lhs: torch.Tensor, rhs: torch.Tensor, lhs_offset: int, rhs_offset: int, output_offset: int,
                 output_multiplier: int, output_shift: int, act_min: int, act_max: int) -> torch.Tensor:
    """int8 codes (as int64) of lhs [..., M, K] and rhs [..., K, N] -> the batch_matmul op's codes (int64)."""
    a = BatchMatmulAttrs(0, 0, lhs_offset, rhs_offset, output_offset, output_multiplier, output_shift,
                         act_min, act_max)
    out = batch_matmul_codes(lhs.detach().cpu().numpy(), rhs.detach().cpu().numpy(), a, "int8")
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.int64))


@batch_matmul.register_fake
def _(lhs, rhs, lhs_offset, rhs_offset, output_offset, output_multiplier, output_shift, act_min, act_max):
    batch = torch.broadcast_shapes(lhs.shape[:-2], rhs.shape[:-2])
    return lhs.new_empty((*batch, lhs.shape[-2], rhs.shape[-1]), dtype=torch.int64)


@torch.library.custom_op("dmxgen::lut_interp", mutates_args=())
def lut_interp(table: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """table [channels, G] and int8 codes (as int64, channels last) -> the lut_interp op's codes (int64)."""
    out = interpolate(table.detach().cpu().numpy(), codes.detach().cpu().numpy())
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.int64))


@lut_interp.register_fake
def _(table, codes):
    return torch.empty_like(codes, dtype=torch.int64)
