"""compress_to_size under torchrun (2 processes, gloo on CPU): the same masks and size on both ranks."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import ROOT


@pytest.mark.slow  # two processes train LeNet on digits
def test_two_ranks_end_with_the_same_masks_and_size(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(ROOT / "tests" / "torch" / "ddp_shrink_worker.py"), str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    a, b = (json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1))
    assert a["masks_and_weights"] == b["masks_and_weights"]
    assert a["size"] == b["size"] == a["final_bytes"] == b["final_bytes"]
    assert a["records"] == b["records"] and len(a["records"]) >= 2  # the same decisions, step by step
    assert a["reached"] and a["size"] <= 6000
    assert a["log_lines"] > 0 and b["log_lines"] == 0  # only rank 0 logs
