"""Models that outgrow the Corstone-300's default memories with almost no compute, so that
QEMU runs them in seconds: a large activation (arena > DTCM) and a large FC (weights > QSPI)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from dmxgen.testing.tflite_builder import ModelBuilder

# [1, 160, 256, 16] int8, copied by a 1x1 max pool into the arena, then 2x2-average-pooled out
BIG_ACTIVATION = (1, 160, 256, 16)
BIG_ARENA_BYTES = 160 * 256 * 16  # 655,360: the copy is the only tensor the arena holds
BIG_ARENA_OUTPUT_BYTES = 80 * 128 * 16
# a 3072 x 3072 int8 FC: 9 MiB of weights, more than the 8 MiB QSPI flash
BIG_FC = 3072
BIG_FC_WEIGHT_BYTES = BIG_FC * BIG_FC
BIG_FC_BIAS_BYTES = BIG_FC * 4


def big_arena_model(path: Path) -> Path:
    m = ModelBuilder()
    x = m.tensor("input", BIG_ACTIVATION, scale=0.05, zero_point=-3)
    copy = m.tensor("copy", BIG_ACTIVATION, scale=0.05, zero_point=-3)
    m.op("MAX_POOL_2D", [x], [copy], padding="VALID", strideH=1, strideW=1, filterHeight=1, filterWidth=1)
    n, h, w, c = BIG_ACTIVATION
    y = m.tensor("pool", [n, h // 2, w // 2, c], scale=0.05, zero_point=-3)
    m.op("AVERAGE_POOL_2D", [copy], [y], padding="VALID", strideH=2, strideW=2, filterHeight=2, filterWidth=2)
    return m.save(path, [x], [y])


def big_fc_model(path: Path) -> Path:
    rng = np.random.default_rng(0)
    m = ModelBuilder()
    x = m.tensor("input", [1, BIG_FC], scale=0.02, zero_point=-3)
    w = rng.integers(-127, 128, size=(BIG_FC, BIG_FC)).astype(np.int8)
    w[w == 0] = 1  # dense under any --format
    fw = m.tensor("fc/w", w.shape, scale=0.001, zero_point=[0], data=w)
    fb = m.tensor("fc/b", [BIG_FC], "int32", scale=0.001 * 0.02, zero_point=[0],
                  data=rng.integers(-500, 500, BIG_FC))
    y = m.tensor("fc/out", [1, BIG_FC], scale=0.5, zero_point=5)
    m.op("FULLY_CONNECTED", [x, fw, fb], [y])
    return m.save(path, [x], [y])


def export_cli(model: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    """`dmxgen export MODEL -o OUT --vectors 1 ARGS`; asserts it succeeded."""
    cmd = [sys.executable, "-m", "dmxgen.cli", "export", str(model), "-o", str(out), "--vectors", "1", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return r
