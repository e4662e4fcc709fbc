"""C simulation of tensors larger than a thread's stack, and a crashing testbench said clearly (issue 10, item 8).

A MobileNetV2 at 224x224 holds 11 MB of activations; on the stack of dmx_top they
overflowed the host's default 8 MB and csim died with exit 139 and no message.
Here one cheap PAD makes a 10 MB tensor that a REDUCE_MAX sums up again.
"""
from __future__ import annotations

import contextlib
import resource
import shutil

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.backends.hls import write_hls
from dmxgen.backends.hls_csim import run_csim
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder

pytestmark = pytest.mark.skipif(shutil.which("g++") is None or shutil.which("make") is None,
                                reason="no host g++/make")

STACK = 8 << 20  # Linux's default thread stack limit


@contextlib.contextmanager
def stack_limit(nbytes: int):
    """Children started inside get a stack of at most `nbytes`, whatever the shell running pytest allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    limit = nbytes if hard == resource.RLIM_INFINITY else min(nbytes, hard)
    resource.setrlimit(resource.RLIMIT_STACK, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_STACK, (soft, hard))


def pad_then_reduce(tmp_path):
    """[1, 8, 8, 4] -PAD-> [1, 1600, 1600, 4] (10,240,000 bytes) -REDUCE_MAX over H, W-> [1, 1, 1, 4]."""
    m = ModelBuilder()
    x = m.tensor("x", [1, 8, 8, 4], scale=0.05, zero_point=-5)
    pads = m.tensor("paddings", [4, 2], "int32", data=np.array([[0, 0], [796, 796], [796, 796], [0, 0]]))
    big = m.tensor("big", [1, 1600, 1600, 4], scale=0.05, zero_point=-5)
    m.op("PAD", [x, pads], [big])
    y = m.tensor("y", [1, 1, 1, 4], scale=0.05, zero_point=-5)
    m.op("REDUCE_MAX", [big, m.tensor("axes", [2], "int32", data=[1, 2])], [y], keepDims=True)
    graph = load_tflite(m.save(tmp_path / "big.tflite", [x], [y]))
    assert graph.tensors["big"].size > STACK
    rng = np.random.default_rng(4)
    ins = [[rng.integers(-128, 128, (1, 8, 8, 4)).astype(np.int8)] for _ in range(2)]
    ins.append([np.full((1, 8, 8, 4), -128, np.int8)])  # every max is then the padding value
    return graph, ins, [reference.run(graph, v) for v in ins]


@pytest.mark.parametrize("interface", ["array", "stream"])
def test_tensors_larger_than_the_stack_pass_csim(tmp_path, interface):
    graph, ins, exp = pad_then_reduce(tmp_path)
    write_hls(graph, tmp_path / "out", sample_inputs=ins, expected_outputs=exp, interface=interface)
    with stack_limit(STACK):
        r = run_csim(tmp_path / "out", opt="-O1")
    assert r.returncode == 0 and "PASS: 3 vectors, 12 output values bit-exact" in r.stdout, \
        r.stdout[-2000:] + r.stderr[-2000:]


@pytest.mark.parametrize("raise_call,message", [
    ("std::raise(SIGSEGV)", "csim crashed: signal 11 (segmentation fault)"),
    ("std::abort()", "csim crashed: signal 6 (aborted)"),
])
def test_a_crashing_testbench_is_reported(tmp_path, raise_call, message):
    graph, ins, exp = pad_then_reduce(tmp_path)
    write_hls(graph, tmp_path / "out", sample_inputs=ins[:1], expected_outputs=exp[:1])
    (tmp_path / "out" / "hls" / "tb.cpp").write_text(
        f"#include <csignal>\n#include <cstdlib>\n\nint main() {{\n    {raise_call};\n    return 0;\n}}\n")
    r = run_csim(tmp_path / "out", opt="-O1")
    assert r.returncode != 0
    assert message in r.stderr, r.stderr[-2000:]
    assert "PASS" not in r.stdout
