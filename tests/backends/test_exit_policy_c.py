"""The C early-exit policy (kernels/exit_policy.c.j2) decides as graph/exit_policy.py does.

Each logit vector is asked at its Python confidence c (must accept) and at c + 1 (must refuse),
which pins the C confidence to the Python one, and at a random threshold; ties, n = 1, n = 2,
all-equal and -128/127 logits are among the cases. Host gcc with ASan/UBSan."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from dmxgen.backends import c_render
from dmxgen.errors import DmxError
from dmxgen.backends.host import SANITIZE, WARNINGS
from dmxgen.graph import exit_policy as ep
from dmxgen.graph.quant_params import softmax_gemmlowp_params
from tests.backends.conftest import needs_gcc

pytestmark = needs_gcc


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    d = tmp_path_factory.mktemp("exit_policy")
    src = d / "exit_policy.c"
    src.write_text(c_render.render("testing/exit_policy_main.c.j2"))
    exe = d / "exit_policy"
    subprocess.run(["gcc", *WARNINGS, "-O2", *SANITIZE, "-I", str(c_render.SHARED), str(src), "-o", str(exe)],
                   check=True)
    return exe


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="no arm-none-eabi-gcc")
def test_policy_kernels_compile_warning_free_for_cortex_m55(tmp_path):
    src = tmp_path / "exit_policy.c"
    src.write_text(c_render.render("testing/exit_policy_main.c.j2"))
    subprocess.run(["arm-none-eabi-gcc", *WARNINGS, "-mcpu=cortex-m55", "-mthumb", "-O2", "-c", "-I",
                    str(c_render.SHARED), str(src), "-o", str(tmp_path / "exit_policy.o")], check=True)


def edge_cases() -> list[np.ndarray]:
    cases = [np.array([v]) for v in (-128, 0, 127)]  # n = 1
    cases += [np.array(p) for p in ([3, 3], [-128, 127], [127, -128], [5, 4], [-128, -128], [127, 127])]  # n = 2
    cases += [np.full(n, v) for n in (3, 10) for v in (-128, 0, 127)]  # all equal
    cases += [np.array([127, -128, 127, 0]), np.array([-128] * 9 + [127]), np.array([0, 9, 9, 1, 9])]
    return cases


def random_cases(rng) -> list[np.ndarray]:
    out = []
    for _ in range(400):
        n = int(rng.integers(1, 40))
        spread = int(rng.choice([2, 8, 60, 256]))
        out.append(np.clip(rng.integers(-spread // 2, spread // 2 + 1, n) + int(rng.integers(-100, 100)), -128, 127))
    return out


def run(exe, records: list[tuple]) -> np.ndarray:
    blob = b"".join(np.array(h, np.int32).tobytes() + logits.astype(np.int8).tobytes() for h, logits in records)
    r = subprocess.run([str(exe)], input=blob, capture_output=True, check=True)
    return np.frombuffer(r.stdout, np.int32).reshape(-1, 3)


@pytest.mark.parametrize("scale", [1 / 16, 0.1, 0.37, 2.0])
def test_c_policy_equals_python(harness, scale):
    rng = np.random.default_rng(int(scale * 1000))
    params = softmax_gemmlowp_params(1.0, scale)
    consts = (params["input_multiplier"], params["input_left_shift"], params["diff_min"])
    records, expected = [], []
    for logits in edge_cases() + random_cases(rng):
        m = int(ep.margins(logits)[0])
        s = int(ep.softmax_max_codes(logits, scale)[0])
        cls = int(ep.predicted_classes(logits)[0])
        assert cls == int(np.flatnonzero(logits == logits.max())[0])  # first index of the maximum
        for tm, ts in ((m, s), (m + 1, s + 1), (int(rng.integers(-5, 260)), int(rng.integers(-130, 130)))):
            records.append(((len(logits), tm, ts, *consts), logits))
            expected.append((int(ep.accepts("margin", logits, tm)), int(ep.accepts("softmax", logits, ts, scale)),
                             cls))
    got = run(harness, records)
    np.testing.assert_array_equal(got, np.array(expected, np.int32))
    assert got[0::3, :2].all() and not got[1::3, :2].any()  # accepted at the confidence, refused one above


def test_python_policy_edge_values():
    assert ep.margins(np.array([[7, 7, 1]]))[0] == 0  # a tie for the top: no margin
    assert ep.margins(np.array([[-128, 127]]))[0] == 255
    assert ep.margins(np.array([[42]]))[0] == ep.MAX_MARGIN
    assert ep.predicted_classes(np.array([[1, 9, 9]]))[0] == 1
    # one logit: softmax gives probability 1 -> code 127, the largest a head reaches
    assert ep.softmax_max_codes(np.array([[0]]), 0.1)[0] == 127
    # n equal logits share the mass: probability 1/n
    assert abs((ep.softmax_max_codes(np.full((1, 4), 3), 0.1)[0] + 128) / 256 - 0.25) <= 1 / 256
    assert not ep.accepts("margin", np.array([127]), ep.NEVER["margin"])
    assert not ep.accepts("softmax", np.array([0]), ep.NEVER["softmax"], 0.1)
    assert ep.accepts("softmax", np.full(10, -128), ep.ALWAYS["softmax"], 0.1)
    assert ep.probability_threshold(0.5) == 0 and ep.probability_threshold(1.0) == ep.NEVER["softmax"]
    for bad, match in ((np.array([0.5, 1.0]), "int8 codes"), (np.array([200, 0]), "int8 codes"),
                       (np.zeros((1, 2, 3), np.int8), "one vector per row")):
        with pytest.raises(DmxError, match=match):
            ep.margins(bad)
    with pytest.raises(DmxError, match="2 threshold"):
        ep.exits_taken(ep.ExitPolicy("margin", (1, 2)), [np.zeros((1, 3), np.int8)])
