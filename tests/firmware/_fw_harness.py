"""Helpers shared by the firmware tests: skip markers, the tiny fixture, C array parsing."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dmxgen import firmware

TINY = Path(__file__).parent / "fixtures" / "tiny"

needs_tools = pytest.mark.skipif(bool(firmware.missing_tools()),
                                 reason=f"needs {', '.join(firmware.missing_tools())} (tools/setup.sh)")
firmware_marks = [pytest.mark.firmware, needs_tools]


def make(*args, timeout: float = 900, **env) -> subprocess.CompletedProcess:
    """`make -s -C firmware ARGS` with the environment plus env."""
    cmd = ["make", "-s", "-C", str(firmware.FIRMWARE_DIR), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **env})


def c_array(path: Path, name: str) -> np.ndarray:
    """The integers of `name[...] = { ... };` in a C header."""
    m = re.search(re.escape(name) + r"\s*\[[^\]]*\][^=]*=\s*\{([^}]*)\}", path.read_text())
    assert m, f"{name} not found in {path}"
    return np.array([int(v) for v in m.group(1).replace("\n", " ").split(",") if v.strip()], dtype=np.int64)


def tiny_numpy_output(folder: Path = TINY) -> np.ndarray:
    """The tiny model computed in numpy from the arrays in its headers (model.h says what it does)."""
    w = folder / "headers" / "weights.h"
    x = c_array(folder / "input.h", "dmx_sample_input")
    h = np.clip((c_array(w, "tiny_fc1_weights").reshape(16, 64) @ x + c_array(w, "tiny_fc1_bias") + 512) >> 10, 0, 127)
    y = (c_array(w, "tiny_fc2_weights").reshape(8, 16) @ h + c_array(w, "tiny_fc2_bias") + 512) >> 10
    return np.clip(y, -128, 127)


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("build-*"))
    return dst


def corrupt_expected(folder: Path, index: int = 0) -> tuple[str, str]:
    """Change the index-th value of expected.h by one; returns (old, new) as printed."""
    path = folder / "expected.h"
    text = path.read_text()
    m = re.search(r"dmx_expected_output\s*\[[^\]]*\][^=]*=\s*\{", text)
    assert m, path
    body_start = m.end()
    body_end = text.index("}", body_start)
    values = text[body_start:body_end].split(",")
    tokens = [(i, v) for i, v in enumerate(values) if v.strip()]
    pos, old = tokens[index]
    old_value = old.strip()
    if re.fullmatch(r"-?\d+", old_value):
        new_value = str(int(old_value) + 1 if int(old_value) < 127 else int(old_value) - 1)
    else:
        number = float(old_value.rstrip("fF"))
        new_value = repr(number + 1.0) + "f"
    values[pos] = old.replace(old_value, new_value)
    path.write_text(text[:body_start] + ",".join(values) + text[body_end:])
    return old_value, new_value


def mve_and_scalar(out: Path, want: np.ndarray) -> dict[str, tuple[int, int]]:
    """Build and run an exported folder twice on QEMU, with MVE and with -DDMX_NO_MVE; both must PASS
    and print `want` (the reference's outputs, flattened). Per layer: (MVE, scalar) instructions."""
    runs = {}
    for build, flags in {"mve": "", "scalar": "-DDMX_NO_MVE"}.items():
        r = firmware.run(out, build_dir=out / f"build-{build}", extra_cflags=flags)
        assert r.passed, f"M55 {build}: {r.verdict}\n{r.log[-2000:]}"
        got = np.array(r.outputs, dtype=want.dtype)
        assert got.shape == want.shape and got.tobytes() == want.tobytes(), f"M55 {build} outputs differ"
        runs[build] = {c.name: c.instructions for c in r.layers}
    assert runs["mve"].keys() == runs["scalar"].keys()
    return {name: (n, runs["scalar"][name]) for name, n in runs["mve"].items()}
