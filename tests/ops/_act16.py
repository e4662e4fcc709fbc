"""The cases of TFLite's int16 LOGISTIC and TANH (test_logistic16.py, test_tanh16.py): every int16 code
through one operator, over input scales that take each path of the Prepare's input rescale."""
from __future__ import annotations

import numpy as np

from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case

ALL_CODES = np.arange(-32768, 32768, dtype=np.int16).reshape(1, 128, 512)
# for the M55, whose DTCM holds the test vectors: every 16th code, cycling through the 16 residues
SPREAD = (np.arange(-32768, 32768, 16) + np.arange(4096) % 16).astype(np.int16).reshape(1, 64, 64)
OUT = 1 / 32768

# name -> input scale; the comment says which path of the Prepare it takes
SCALES = {
    "pot": 2.0**-12,  # power of two, input_left_shift 0: multiplier 0 (3 << 0)
    "pot_shift1": 2.0**-11,  # TANH: multiplier 0, shift 1; LOGISTIC: the general multiplier
    "pot_fine": 2.0**-15,  # power of two outside the kernels' shifts: general, shift 16
    "pot_coarse": 2.0**-7,  # general, shift 7: most codes saturate the table
    "near_pot": 2.0**-12 * 1.0002,  # within CheckedLog2's tolerance: the power-of-two path
    "third": 1 / 3000,  # general multipliers
    "milli": 0.001,
    "odd": 0.0007123,
    "tiny": 2e-8,  # shift 26: |v| <= 8, the first table entries only
    "wide": 3.0,  # multiplier 36864 > 32767 at shift 0 (TFLite DCHECKs it; int32 still holds it)
}


def model(opname: str, s_in: float, s_out: float = OUT, zp_out: int = 0, shape=ALL_CODES.shape,
          out_dtype: str = "int16"):
    m = ModelBuilder()
    x = m.tensor("x", list(shape), "int16", scale=s_in, zero_point=0)
    y = m.tensor("y", list(shape), out_dtype, scale=s_out, zero_point=zp_out)
    m.op(opname, [x], [y])
    return m, x, y


def case(opname: str, name: str, codes: np.ndarray = ALL_CODES) -> Case:
    """The harness's seeded random and extreme sets, then `codes` (all 65536), then reversed."""
    m, x, y = model(opname, SCALES[name], shape=codes.shape)
    return Case(m, [x], [y], n=1, seed=16, extra=[[codes], [codes[:, ::-1, ::-1].copy()]])


def target_cases(opname: str, target: str) -> dict[str, Case]:
    """Every scale; on the M55 (its vectors in DTCM) over SPREAD rather than all codes."""
    codes = SPREAD if target == "m55" else ALL_CODES
    return {name: case(opname, name, codes) for name in SCALES}
