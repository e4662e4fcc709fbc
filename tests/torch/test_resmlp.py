"""ResMLP (models/resmlp.py): shapes, tokens, and distillation bringing a student near its teacher."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from models.resmlp import ResMLP, distill, tokens  # noqa: E402


def test_tokens_are_row_major_patches():
    img = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    t = tokens(img, 2)
    assert t.shape == (2, 4, 4)
    assert t[0, 1].tolist() == [2, 3, 6, 7]  # the top-right 2x2 patch of the first image


def test_resmlp_variants_run_and_lerp_psa_has_one_table_per_hidden_feature():
    x = torch.randn(3, 16, 4)
    for act in ("relu", "gelu", "lerp_psa"):
        m = ResMLP(tokens=16, patch=4, dim=8, hidden=12, depth=2, act=act)
        assert m(x).shape == (3, 10)
        assert len(m.hidden_states(x)) == 3
    assert m.blocks[0].act.psa.v.shape == (12, 8)


def test_distillation_brings_the_student_to_the_teachers_answers():
    torch.manual_seed(0)
    x = torch.randn(64, 16, 4)
    teacher = ResMLP(dim=8, hidden=16, depth=1).eval()
    student = ResMLP(dim=8, hidden=8, depth=1)

    def gap():
        with torch.no_grad():
            mse = sum(F.mse_loss(a, b).item() for a, b in zip(student.hidden_states(x), teacher.hidden_states(x)))
            return mse, (student(x).argmax(-1) == y).float().mean().item()

    with torch.no_grad():
        y = teacher(x).argmax(-1)  # labels the teacher agrees with
    before = gap()
    distill(student, teacher, x, y, epochs=80, lr=1e-2)
    after = gap()
    assert after[1] >= 0.9 > before[1], (before, after)


def test_a_lerp_psa_resmlp_runs_bit_exact_on_the_host_in_stream_csim_and_on_the_m55(tmp_path):
    """ResMLP with LERP-PSA tables, exported with --target c,hls --hls-interface stream."""
    import shutil

    import pytest

    from dmxgen import firmware
    from dmxgen.api import save
    from dmxgen.backends.hls_csim import run_csim
    from tests.ops._torch import assert_codes_agree, calibrated
    from tests.torch.conftest import export_and_verify

    m, x = calibrated(lambda: ResMLP(tokens=16, patch=4, dim=8, hidden=8, depth=1, act="lerp_psa"), (32, 16, 4))
    g = m.to_graph(x[:1])
    assert {"lut_interp", "transpose", "affine"} <= {op.kind for op in g.ops}
    assert_codes_agree(m, g, x)
    out = export_and_verify(save(m, tmp_path / "resmlp.pt2", x), tmp_path / "out", "--target", "c,hls",
                            "--hls-interface", "stream")
    if shutil.which("g++") and shutil.which("make"):
        r = run_csim(out, opt="-O1")
        assert r.returncode == 0 and "PASS" in r.stdout, r.stdout[-2000:]
        assert "#pragma HLS DATAFLOW" in (out / "hls" / "top.cpp").read_text()
    if firmware.missing_tools():
        pytest.skip(f"needs {', '.join(firmware.missing_tools())} for the M55 run")
    r = firmware.run(out, build_dir=out / "fw")
    assert r.passed, r.verdict
