"""`dmxgen shrink`: a user's entry point, the digits example, exit codes and one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

ENTRY = textwrap.dedent('''
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset


    def data(n, seed):
        teacher = torch.randn(16, 4, generator=torch.Generator().manual_seed(99))
        x = torch.randn(n, 16, generator=torch.Generator().manual_seed(seed))
        return TensorDataset(x, (x @ teacher).argmax(1))


    def build():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
        train = data(512, 0)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(60):
            loss = F.cross_entropy(net(train.tensors[0]), train.tensors[1])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return net, DataLoader(train, batch_size=64), DataLoader(data(256, 1), batch_size=64), \\
            DataLoader(data(128, 2), batch_size=64)


    def two():
        return 1, 2
''')


def shrink(tmp_path, *args):
    (tmp_path / "tiny_entry.py").write_text(ENTRY)
    return subprocess.run([sys.executable, "-m", "dmxgen.cli", "shrink", *args], capture_output=True, text=True,
                          cwd=tmp_path)


def test_entry_point_reaches_its_target_and_writes_the_pt2_and_history(tmp_path):
    r = shrink(tmp_path, "--entry", "tiny_entry:build", "--target-kb", "1.035", "--step", "0.3", "--epochs", "3",
               "--retrain", "all", "-o", "out")
    assert r.returncode == 0, r.stderr
    history = json.loads((tmp_path / "out" / "history.json").read_text())
    assert history["reached"] and history["final_bytes"] <= 1035 and history["records"]
    assert (tmp_path / "out" / "model.pt2").stat().st_size > 0
    assert "layer  density  format" in r.stdout and f"-> {history['final_bytes']:,} B" in r.stdout
    assert "validation accuracy" in r.stdout and "test" in r.stdout
    assert r.stdout.count("[  ") == len(history["records"])  # the per-step log


def test_unreachable_target_exits_1_and_still_writes_the_best_model(tmp_path):
    r = shrink(tmp_path, "--entry", "tiny_entry:build", "--target-kb", "0.05", "--epochs", "1", "--quiet",
               "-o", "out")
    assert r.returncode == 1, r.stderr
    assert "stopped: every remaining layer is fragile" in r.stdout and "[  " not in r.stdout
    history = json.loads((tmp_path / "out" / "history.json").read_text())
    assert not history["reached"] and (tmp_path / "out" / "model.pt2").exists()


@pytest.mark.parametrize("entry,msg", [
    ("tiny_entry", "--entry 'tiny_entry': expected module:function"),
    ("no_such_module:f", "--entry 'no_such_module:f': cannot import 'no_such_module'"),
    ("tiny_entry:nothing", "--entry 'tiny_entry:nothing': 'tiny_entry' has no function 'nothing'"),
    ("tiny_entry:two", "--entry 'tiny_entry:two' returned 2; expected (model, train_loader, test_loader"),
])
def test_bad_entry_is_one_line_and_exit_2(tmp_path, entry, msg):
    r = shrink(tmp_path, "--entry", entry, "--target-kb", "1", "-o", "out")
    assert r.returncode == 2
    assert r.stderr.startswith(f"dmxgen: error: {msg}") and r.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # about a minute: trains LeNet in float first
def test_digits_example_is_the_default(tmp_path):
    r = shrink(tmp_path, "--target-kb", "9", "--storage", "dcsr", "--float-epochs", "3", "--epochs", "1",
               "--drop-limit", "30", "--quiet", "-o", "out")
    assert r.returncode == 0, r.stderr
    history = json.loads((tmp_path / "out" / "history.json").read_text())
    assert set(history["layers"]) == {"conv1", "conv2", "fc1", "fc2"}
    assert history["start_bytes"] == 15_048 and history["final_bytes"] <= 9000
    assert r.stdout.startswith("layer") and "digits: 15,048 B ->" in r.stdout
