"""Ops with several outputs, and graphs with named entry points (issue 11 item 6).

An early-exit shaped graph (stage1: conv + exit head, stage2: the rest of the backbone reading the
conv features) runs entry by entry in the reference, as C functions dmx_model_stage1/2 over one
arena (host gcc, sanitizers) and as HLS top functions dmx_top_stage1/2 (csim), all bit-exact with
the whole graph; the arena plan keeps a cross-entry tensor out of every caller's buffer.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.backends import host
from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.graph import Graph, Op
from dmxgen.graph.entries import Entry, cross_entry, in_entry_order
from dmxgen.graph.op import SPECS
from dmxgen.ops._spec import ACTIVATION, WEIGHTS, OpSpec
from dmxgen.plan import plan_memory
from dmxgen.targets import export, verify_folder
from dmxgen.testing.tflite_builder import small_cnn
from tests.test_plan import ADD, check_no_overlap, t

needs_gcc = pytest.mark.skipif(not host.have_compiler(), reason="no host C compiler")
needs_csim = pytest.mark.skipif(shutil.which("g++") is None or shutil.which("make") is None,
                                reason="HLS csim needs g++ and make")


# -- ops with several outputs ---------------------------------------------------------------------

@dataclass(frozen=True)
class NoAttrs:
    pass


class Halves(OpSpec):
    """Test-only kind: the two halves of the last axis, as two outputs."""

    kind = "test_halves"
    summary = "test only"
    Attrs = NoAttrs
    outputs = 2

    def reference(self, op, args, outs):
        lo, hi = np.split(args[0], 2, axis=-1)
        return lo, hi


class TwoWeights(OpSpec):
    kind = "test_two_weights"
    summary = "test only"
    Attrs = NoAttrs
    inputs = (ACTIVATION, WEIGHTS, WEIGHTS)

    def reference(self, op, args, out_t):
        return args[0]


@pytest.fixture
def halves(monkeypatch):
    """The kind registered for one test only (monkeypatch takes it out of SPECS and KERNELS again)."""
    spec = Halves()
    monkeypatch.setitem(SPECS, spec.kind, spec)
    monkeypatch.setitem(reference.KERNELS, spec.kind, spec.reference)
    return spec


def halves_graph(n_outputs: int = 2) -> Graph:
    """x -> halves -> (lo, hi); y = lo + hi read through an ADD, so the second output has a reader."""
    names = ["lo", "hi"][:n_outputs]
    g = Graph({x.name: x for x in [t("x", (1, 8)), t("lo", (1, 4)), t("hi", (1, 4)), t("y", (1, 4))]},
              [Op("split", "test_halves", ["x"], names), Op("sum", "add", ["lo", "hi"], ["y"], ADD)], ["x"], ["y"])
    return g


def test_reference_stores_every_output_of_an_op(halves):
    g = halves_graph()
    g.validate()
    x = np.arange(-4, 4, dtype=np.int8).reshape(1, 8)
    values = reference.run(g, [x], keep=True)
    assert np.array_equal(values["lo"], x[:, :4]) and np.array_equal(values["hi"], x[:, 4:])
    assert values["lo"].dtype == np.int8 and values["hi"].shape == (1, 4)


def test_validate_checks_the_output_count_against_the_spec(halves):
    with pytest.raises(DmxError, match=r"^op 'split' \(test_halves, output 'lo'\): has 1 output, test_halves "
                                       r"writes 2$"):
        halves_graph(n_outputs=1).validate()


def test_a_kernel_that_returns_one_value_for_two_outputs_is_refused(halves, monkeypatch):
    monkeypatch.setitem(reference.KERNELS, "test_halves", lambda op, args, outs: args[0])
    with pytest.raises(DmxError, match=r"op 'split' \(test_halves\): the reference kernel returned one values "
                                       r"for 2 outputs"):
        reference.run(halves_graph(), [np.zeros((1, 8), np.int8)])


def test_the_plan_allocates_each_output(halves):
    g = halves_graph()
    plan = plan_memory(g, inplace=False)  # (in place, y would take lo's bytes)
    lo, hi = plan.buffer("lo"), plan.buffer("hi")
    assert lo is not hi and (lo.start, lo.end, hi.start, hi.end) == (0, 1, 0, 1)
    assert {lo.offset, hi.offset} == {0, 16}  # both live at once: different bytes
    check_no_overlap(g)


def test_weight_tensors_lists_every_weight_input(monkeypatch):
    spec = TwoWeights()
    monkeypatch.setitem(SPECS, spec.kind, spec)
    g = Graph({x.name: x for x in [t("x", (1, 4)), t("w1", (4,), const=True), t("w2", (4,), const=True),
                                   t("y", (1, 4))]},
              [Op("two", "test_two_weights", ["x", "w1", "w2"], ["y"])], ["x"], ["y"])
    assert [w.name for w in g.weight_tensors(g.ops[0])] == ["w1", "w2"]
    assert g.weights(g.ops[0]).name == "w1"


def test_weight_tensors_of_real_ops(tmp_path):
    g = load_tflite(small_cnn().save(tmp_path / "cnn.tflite", [0], [13]))
    by_kind = {op.kind: [w.name for w in g.weight_tensors(op)] for op in g.ops}
    assert by_kind["conv2d"] == ["conv/w"] and by_kind["fully_connected"] == ["fc/w"]
    assert by_kind["softmax"] == [] and g.weights(g.ops[-1]) is None


# -- an early-exit shaped graph -------------------------------------------------------------------

def early_exit_model(tmp_path: Path) -> Path:
    """small_cnn with an exit head (global average pool, FC) on the first conv's output."""
    m = small_cnn(seed=1)
    index = {x.name.decode(): i for i, x in enumerate(m.sg.tensors)}
    rng = np.random.default_rng(5)
    p = m.tensor("exit/pool", [1, 1, 1, 8], scale=0.05, zero_point=-128)
    m.op("AVERAGE_POOL_2D", [index["conv/out"]], [p], padding="VALID", strideH=6, strideW=6, filterHeight=6,
         filterWidth=6)
    shape = m.tensor("exit/shape", [2], "int32", data=[1, 8])
    f = m.tensor("exit/flat", [1, 8], scale=0.05, zero_point=-128)
    m.op("RESHAPE", [p, shape], [f], newShape=[1, 8])
    w = m.tensor("exit/w", [10, 8], scale=[0.01], zero_point=[0], data=rng.integers(-127, 128, (10, 8)))
    b = m.tensor("exit/b", [10], "int32", scale=[0.0005], zero_point=[0], data=rng.integers(-500, 500, 10))
    y = m.tensor("exit/out", [1, 10], scale=0.1, zero_point=0)
    m.op("FULLY_CONNECTED", [f, w, b], [y])
    return m.save(tmp_path / "ee.tflite", [0], [y, index["softmax/out"]])


STAGES = {"stage1": Entry(["input"], ["exit/out"]), "stage2": Entry([], ["softmax/out"])}


@pytest.fixture
def ee(tmp_path) -> Graph:
    g = load_tflite(early_exit_model(tmp_path))
    g.entries = STAGES
    g = in_entry_order(g)
    g.validate()
    return g


def inputs(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, (1, 12, 12, 3)).astype(np.int8) for _ in range(n)]


def test_a_graph_without_entries_has_one_entry_run_the_whole_graph(tmp_path):
    g = load_tflite(early_exit_model(tmp_path))
    assert not g.has_entry_points and list(g.entries) == ["run"]
    e = g.entries["run"]
    assert (e.inputs, e.outputs, e.ops) == (g.inputs, g.outputs, [op.name for op in g.ops])
    assert g.entry_ops() == {"run": list(range(len(g.ops)))}


def test_entries_derive_their_ops_and_the_tensor_that_crosses(ee):
    kinds = {name: [ee.ops[i].kind for i in idx] for name, idx in ee.entry_ops().items()}
    assert kinds == {"stage1": ["conv2d", "avg_pool2d", "reshape", "fully_connected"],
                     "stage2": ["depthwise_conv2d", "avg_pool2d", "reshape", "fully_connected", "softmax"]}
    assert cross_entry(ee) == {"conv/out": ("stage1", "stage2")}


def test_the_arena_plan_keeps_the_features_for_stage2(ee):
    """conv/out (stage1) is read by stage2's first op: nothing that runs in between, the exit head's
    tensors and every op's scratch included, may take its bytes."""
    scratch = {i: 64 for i in range(len(ee.ops))}
    plan = plan_memory(ee, scratch)
    b = plan.buffer("conv/out")
    assert plan.storage("conv/out") == "arena" and (b.start, b.end) == (0, 4)
    between = [o for o in plan.arena_buffers if o is not b and o.start <= 4 and o.size]
    assert sorted(o.name for o in between) == ["dw/out", "exit/pool"] + [f"scratch:{i}" for i in range(5)]
    assert all(o.offset + o.size <= b.offset or b.offset + b.size <= o.offset for o in between)
    check_no_overlap(ee, scratch)


def test_running_entry_by_entry_equals_running_the_whole_graph(ee):
    for x in inputs(4):
        whole = reference.run(ee, [x])
        state: dict = {}
        first = reference.run_entry(ee, "stage1", [x], state)
        assert list(state) == ["conv/out"]
        second = reference.run_entry(ee, "stage2", {}, state)
        assert list(first) == ["exit/out"] and list(second) == ["softmax/out"]
        assert np.array_equal(first["exit/out"], whole["exit/out"])
        assert np.array_equal(second["softmax/out"], whole["softmax/out"])


def test_a_later_entry_without_the_earlier_ones_state_is_refused(ee):
    with pytest.raises(DmxError, match=r"^entry 'stage2' reads 'conv/out' from entry 'stage1'; run 'stage1' first$"):
        reference.run_entry(ee, "stage2", [], {})
    with pytest.raises(DmxError, match=r"no entry point 'stage3'"):
        reference.run_entry(ee, "stage3", [], {})


def add_graph(entries: dict[str, Entry] | None = None, reshape: bool = True) -> Graph:
    """stage1: r = reshape(x), f = x + x, y1 = r + r; stage2: y2 = f + r (reads both from stage1).

    f dies at y2's ADD (an in-place candidate whose result is stage2's output buffer) and r is a
    reshape of the graph input (an alias candidate into stage1's input buffer)."""
    r = Op("r", "reshape", ["x"], ["r"]) if reshape else Op("r", "add", ["x", "x"], ["r"], ADD)
    ops = [r, Op("f", "add", ["x", "x"], ["f"], ADD), Op("y1", "add", ["r", "r"], ["y1"], ADD),
           Op("y2", "add", ["f", "r"], ["y2"], ADD)]
    g = Graph({x.name: x for x in [t(n, (1, 8)) for n in ("x", "r", "f", "y1", "y2")]}, ops, ["x"], ["y1", "y2"])
    g.entries = entries if entries is not None else {"stage1": Entry(["x"], ["y1"], ["r", "f", "y1"]),
                                                     "stage2": Entry([], ["y2"], ["y2"])}
    return g


def test_the_plan_keeps_cross_entry_tensors_in_the_arena_and_alive():
    g = add_graph()
    g.validate()
    plan = plan_memory(g)
    # r would alias stage1's input buffer and f would become stage2's output buffer in a one-entry
    # graph; across calls both must be arena bytes that nothing in between takes.
    assert plan.storage("r") == "arena" and 0 in plan.copies
    assert plan.storage("f") == "arena" and 3 not in plan.inplace
    for name in ("r", "f"):
        b = plan.buffer(name)
        assert (b.start, b.end) == (g.ops.index(g.producer(name)), 3)
        others = [o for o in plan.arena_buffers if o is not b and o.overlaps_in_time(b) and o.size]
        assert all(o.offset + o.size <= b.offset or b.offset + b.size <= o.offset for o in others)
    check_no_overlap(g)
    one = plan_memory(add_graph(entries={}))  # the same ops as one entry: alias and in place
    assert one.storage("r") == "input" and one.storage("f") == "output"


@pytest.mark.parametrize("entries, message", [
    ({"stage1": Entry([], ["y1"]), "stage2": Entry(["x"], ["y2"])},
     "entry 'stage1' needs 'x', which is neither among its inputs nor computed by an op (a graph input: list it "
     "among the entry inputs)"),
    ({"stage1": Entry(["x"], ["y1"], ["r", "y1"]), "stage2": Entry([], ["y2"], ["f", "y2"])},
     "entry 'stage2': op 'f' (add) reads 'x', a graph input it does not list"),
    ({"stage1": Entry(["x"], ["y1"])},
     "op 'f' (add) belongs to no entry point"),
    ({"run": Entry(["x"], ["y1", "y2"])},
     "entry name 'run' is kept for the whole-graph call; choose another"),
    ({"Stage-1": Entry(["x"], ["y1", "y2"])},
     "entry name 'Stage-1' must be lower case letters, digits and '_', starting with a letter"),
    ({"stage1": Entry(["x"], ["y1", "r"]), "stage2": Entry([], ["y2"])},
     "entry 'stage1': output 'r' is not a graph output"),
    ({"stage2": Entry(["x"], ["y2"]), "stage1": Entry(["x"], ["y1"])},
     "entry 'stage2': op 'y2' is out of order; the graph's ops must be its entries' ops, one entry after the "
     "other (see graph.entries.in_entry_order)"),
])
def test_entry_rules_are_checked_with_one_line(entries, message):
    with pytest.raises(DmxError) as e:
        add_graph(entries).validate()
    assert str(e.value) == message


def test_a_later_entry_cannot_read_an_earlier_entrys_output():
    g = add_graph(reshape=False)
    g.ops[3] = Op("y2", "add", ["f", "y1"], ["y2"], ADD)
    with pytest.raises(DmxError, match=r"^entry 'stage2': op 'y2' \(add\) reads 'y1', an output of entry "
                                       r"'stage1' \(the caller's buffer of that call\)$"):
        g.validate()


# -- C: one function per entry over one arena -----------------------------------------------------

MAIN = r"""
#include <stdio.h>
#include <string.h>
#include "model.h"

/* For each vector i: stage1(i) -> exit output; stage1(i + 1) then stage2() -> the final output of
 * vector i + 1 (the last stage1 call decides what stage2 continues from); dmx_model_run(i). */
int main(int argc, char **argv)
{
    static dmx_input0_t x[64][DMX_INPUT0_SIZE];
    static dmx_output0_t exit_out[DMX_OUTPUT0_SIZE], scratch_out[DMX_OUTPUT0_SIZE];
    static dmx_output1_t final_out[DMX_OUTPUT1_SIZE];
    FILE *in = argc == 3 ? fopen(argv[1], "rb") : NULL;
    FILE *out = argc == 3 ? fopen(argv[2], "wb") : NULL;
    if (in == NULL || out == NULL) {
        return 2;
    }
    size_t n = fread(x, sizeof x[0], 64, in);
    fclose(in);
    for (size_t i = 0; i < n; i++) {
        if (dmx_model_stage1(x[i], exit_out) != 0 || dmx_model_stage1(x[(i + 1) % n], scratch_out) != 0 ||
            dmx_model_stage2(final_out) != 0) {
            return 1;
        }
        fwrite(exit_out, sizeof exit_out, 1, out);
        fwrite(final_out, sizeof final_out, 1, out);
        memset(exit_out, 0, sizeof exit_out);
        memset(final_out, 0, sizeof final_out);
        if (dmx_model_run(x[i], exit_out, final_out) != 0) {
            return 1;
        }
        fwrite(exit_out, sizeof exit_out, 1, out);
        fwrite(final_out, sizeof final_out, 1, out);
    }
    fclose(out);
    return 0;
}
"""


def build_c(folder: Path, main: str, workdir: Path) -> Path:
    """Compile the exported folder with `main` as the host tests do: -Wall -Wextra -Werror, ASan, UBSan."""
    (workdir / "main.c").write_text(main)
    exe = workdir / "prog"
    cmd = [host.CC, *host.WARNINGS, "-O1", *host.SANITIZE, "-I", str(folder),
           *sorted(str(p) for p in folder.glob("*.c")), str(workdir / "main.c"), "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return exe


@needs_gcc
def test_c_entry_functions_in_sequence_match_the_reference(ee, tmp_path):
    out = tmp_path / "out"
    manifest = export(ee, out, n_vectors=2)
    header = (out / "model.h").read_text()
    assert "int dmx_model_stage1(const dmx_input0_t *in_input, dmx_output0_t *out_exit_out);" in header
    assert "int dmx_model_stage2(dmx_output1_t *out_softmax_out);" in header
    assert ("int dmx_model_run(const dmx_input0_t *in_input, dmx_output0_t *out_exit_out, "
            "dmx_output1_t *out_softmax_out);" in header)
    assert [(e["function"], e["inputs"], e["outputs"], e["layers"]) for e in manifest["entries"]] == [
        ("dmx_model_stage1", ["input"], ["exit/out"], [0, 3]),
        ("dmx_model_stage2", [], ["softmax/out"], [4, 8])]
    xs = inputs(5, seed=3)
    exe = build_c(out, MAIN, tmp_path)
    (tmp_path / "in.bin").write_bytes(b"".join(x.tobytes() for x in xs))
    r = subprocess.run([str(exe), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")], capture_output=True,
                       text=True, env={**os.environ, **host.RUN_ENV}, timeout=120)
    assert r.returncode == 0, r.stderr
    got = np.frombuffer((tmp_path / "out.bin").read_bytes(), np.int8).reshape(len(xs), 4, 10)
    for i, x in enumerate(xs):
        now, after = reference.run(ee, [x]), reference.run(ee, [xs[(i + 1) % len(xs)]])
        assert np.array_equal(got[i, 0], now["exit/out"].reshape(-1))
        assert np.array_equal(got[i, 1], after["softmax/out"].reshape(-1))
        assert np.array_equal(got[i, 2], now["exit/out"].reshape(-1))
        assert np.array_equal(got[i, 3], now["softmax/out"].reshape(-1))
    result = verify_folder(out, n_inputs=2)  # the stored vectors through dmx_model_run, per layer
    assert result["bit_exact"] and not any(layer["mismatches"] for layer in result["layers"])


@needs_gcc
def test_c_export_of_cross_entry_alias_and_in_place_candidates_is_bit_exact(tmp_path):
    """add_graph's r and f through the C backend: had the plan left them in the caller's buffers,
    stage2 would read stage1's input pointer or stage1 would write stage2's output pointer."""
    g = add_graph()
    out = tmp_path / "out"
    export(g, out, n_vectors=3)
    text = (out / "model.c").read_text()
    stage2 = text[text.index("int dmx_model_stage2("):text.index("int dmx_model_run(")]
    assert "in_x" not in stage2 and "(void)" not in stage2
    result = verify_folder(out, n_inputs=3)
    assert result["bit_exact"] and [o["mismatches"] for o in result["outputs"]] == [0, 0]


# -- HLS: one top function per entry, the same static buffers -------------------------------------

@needs_csim
def test_hls_entry_tops_in_sequence_pass_csim(ee, tmp_path):
    from dmxgen.backends.hls_csim import run_csim

    out = tmp_path / "out"
    manifest = export(ee, out, targets=("c", "hls"), n_vectors=3)
    assert [(e["top"], e["inputs"], e["outputs"]) for e in manifest["hls"]["entries"]] == [
        ("dmx_top_stage1", ["in0"], ["out0"]), ("dmx_top_stage2", [], ["out1"])]
    tb = (out / "hls" / "tb.cpp").read_text()
    assert "dmx_top_stage1(in0, out0);\n    dmx_top_stage2(out1);" in tb  # the testbench calls the entries
    top = (out / "hls" / "top.cpp").read_text()
    assert top.count("static int8_t t") == 5 and "    static int8_t" not in top  # file scope, shared
    r = run_csim(out, sanitize=True)
    assert r.returncode == 0 and "PASS: 3 vectors, 60 output values bit-exact" in r.stdout, r.stdout + r.stderr


def test_hls_stream_interface_refuses_entry_points(ee, tmp_path):
    with pytest.raises(DmxError, match=r"^HLS backend: entry points need the array interface"):
        export(ee, tmp_path / "out", targets=("hls",), n_vectors=1, hls={"interface": "stream"})
    assert not (tmp_path / "out").exists()
