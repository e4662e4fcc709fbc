"""The per-target registries (C resolvers, HLS builders, TFLite mappings) and the support matrix
derived from them: they agree with each spec's declared targets, fail loudly when they do not,
and the committed tables are the generated ones."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dmxgen import reference, support
from dmxgen.backends import c_render, hls_ops
from dmxgen.backends.c_layers import C_RESOLVERS, Resolver, scratch_bytes
from dmxgen.backends.hls_ops import HLS_BUILDERS
from dmxgen.backends.hls_plan import build_plan
from dmxgen.codecs.view import SPARSE_KERNELS
from dmxgen.errors import DmxError
from dmxgen.frontends import torch_io
from dmxgen.frontends.tflite import ARITY, OPERATORS, SUPPORTED
from dmxgen.frontends.tflite_packed import _OPS
from dmxgen.graph import Graph, Op, Tensor
from dmxgen.ops import SPECS, TARGETS, RegistrationError, Registry
from dmxgen.plan import plan_memory

ROOT = Path(__file__).resolve().parents[2]

# kernels.h's order before it was derived from the registrations (c_render.KERNEL_ORDER, written by hand).
OLD_KERNEL_ORDER = {
    "common": True, "im2col": True, "matvec_dense": True, "matvec_csr": True, "matvec_dcsr": True,
    "conv2d": True, "fully_connected": True, "depthwise_conv2d": True, "add": True, "mul": True,
    "avg_pool2d": True, "max_pool2d": True, "pad": True, "requantize": True, "lut": True, "concat": True, "copy": True,
    "mean": False, "reduce_max": False, "softmax": False, "softmax_gemmlowp": False,
    "quantize_f32": False, "dequantize": False,
}


def test_registrations_agree_with_the_declared_targets():
    assert support.problems() == []
    for kind, s in SPECS.items():
        assert set(s.targets) <= set(TARGETS), kind
        assert ("c_mve" not in s.targets) or ("c" in s.targets), kind


def test_a_target_without_the_declaration_is_reported(monkeypatch):
    """Claiming a target with no code, or having code without the claim, is each one problem line."""
    monkeypatch.delitem(HLS_BUILDERS.entries, "lut")  # lut keeps claiming hls, without its code
    monkeypatch.setattr(type(SPECS["pad"]), "targets", ("hls", "tflite"))
    assert support.problems() == [
        "lut: ops/lut.py lists 'hls' in targets but no hls code is registered",
        "pad: has c code but ops/pad.py does not list 'c' in targets",
        "pad: has c_mve code but ops/pad.py does not list 'c_mve' in targets",
    ]


def test_the_committed_support_tables_are_the_generated_ones():
    for doc in ("README.md", "docs/support.md"):
        text = (ROOT / doc).read_text(encoding="utf-8")
        assert support.with_table(text) == text, f"{doc} is stale: write dmxgen.support.with_table(text) back"
    table = support.markdown()
    assert "| `requantize` | int8, int16 | yes | yes | - | yes | CONCATENATION, QUANTIZE | yes |" in table.splitlines()
    assert "| `mean_float` | float32 | yes | - | - | - | MEAN | - |" in table.splitlines()
    assert "| `fully_connected` | int8, int16 | yes | yes | yes | yes | FULLY_CONNECTED | yes |" in table.splitlines()
    # HLS: the dtypes the kind's HLS builder registers, where they are not all of the spec's
    assert "| `pad` | int8, int16, float32 | yes | yes | yes | int8, int16 | PAD, PADV2, SPACE_TO_BATCH_ND | - |" \
        in table.splitlines()
    # C + MVE: the spec's mve_dtypes, where they are not all of its dtypes (the 16x8 pools run scalar)
    assert "| `avg_pool2d` | int8, int16 | yes | yes | int8 | yes | AVERAGE_POOL_2D | yes |" in table.splitlines()


def test_kernel_order_is_the_hand_written_one():
    """kernels.h prints kernels in the registered order; it must not move for existing models
    (kernels.h prints the ones a model uses, so kernels added since may come anywhere)."""
    order = list(c_render.kernel_order().items())
    assert [item for item in order if item[0] in OLD_KERNEL_ORDER] == list(OLD_KERNEL_ORDER.items())
    for name in c_render.kernel_order():
        assert (c_render.TEMPLATES / f"kernels/{name}.c.j2").exists(), name
    picked = c_render.kernels_for({("softmax", None), ("conv2d", "csr"), ("matvec_csr", None), ("im2col", None),
                                   ("requantize", None)})
    assert [(k.name, k.fmt) for k in picked] == [("common", None), ("im2col", None), ("matvec_csr", None),
                                                 ("conv2d", "csr"), ("requantize", None), ("softmax", None)]
    with pytest.raises(KeyError, match=r"no kernel template for \['conv3d'\]"):
        c_render.kernels_for({("conv3d", None)})


def test_every_registered_template_exists():
    for kind, entry in C_RESOLVERS.entries.items():
        for name in (*entry.kernels, *entry.calls):
            assert (c_render.TEMPLATES / f"kernels/{name}.c.j2").exists(), (kind, name)
    for kind, entry in HLS_BUILDERS.entries.items():
        assert entry.alias or (ROOT / "templates" / "hls" / entry.template).exists(), kind
        if entry.template == hls_ops.PARAMS_LAYER:  # printed from kernel_params: dmx_<kind>.h, or hls_ops.HEADERS'
            assert (hls_ops.KERNEL_HEADERS / hls_ops.kernel_header(kind)).exists(), kind


def test_registry_refuses_unknown_and_duplicate_kinds():
    r = Registry("c", "C kernel")
    with pytest.raises(ValueError, match="'conv3d' is not an op kind"):
        r.register("conv3d")
    r.register("add")(len)
    with pytest.raises(ValueError, match="'add' is registered twice"):
        r.register("add")(len)
    with pytest.raises(ValueError, match="unknown target 'fpga'"):
        Registry("fpga", "x")
    # a kind that claims the target but has no code is a bug, not a user error
    with pytest.raises(RegistrationError, match=r"mul claims target 'c' \(ops/mul.py\) but has no C kernel registered"):
        r.lookup("mul", "layer 'm'")


def _mean_float_graph():
    t = {n: Tensor(n, (1, 4), "float32") for n in ("x", "m")}
    t["y"] = Tensor("y", (1, 1), "float32")
    return Graph(t, [Op("mean_3", "mean_float", ["x"], ["y"], {"axes": (1,)})], ["x"], ["y"])


def test_backends_refuse_a_kind_they_do_not_implement_in_one_line(monkeypatch):
    g = _mean_float_graph()
    resolver = Resolver(g, plan_memory(g))
    with pytest.raises(DmxError) as e:
        resolver.resolve(0, g.ops[0], "mean_3")
    assert str(e.value) == "layer 'mean_3': op mean_float has no C kernel (it runs on: reference, tflite)"
    monkeypatch.delitem(HLS_BUILDERS.entries, "lut")  # a kind the HLS backend does not implement
    monkeypatch.setattr(type(SPECS["lut"]), "targets", ("c", "tflite", "torch"))
    x = Tensor("x", (1, 4), "int8")
    lut = Graph({t.name: t for t in [x, Tensor("y", (1, 4), "int8")]},
                [Op("lut", "lut", ["x"], ["y"], {"table": np.zeros(256, np.int8)})], ["x"], ["y"])
    with pytest.raises(DmxError) as e:
        build_plan(lut, "dense", 1)
    assert str(e.value) == ("HLS backend: layer 'lut': op lut has no HLS kernel "
                            "(it runs on: reference, c, tflite, torch)")


def test_scratch_is_the_registered_size():
    x = Tensor("x", (1, 5, 5, 3), "int8")
    w3 = Tensor("w", (4, 3, 3, 3), "int8", data=np.ones((4, 3, 3, 3), np.int8))
    w1 = Tensor("w1", (4, 1, 1, 3), "int8", data=np.ones((4, 1, 1, 3), np.int8))
    conv = dict(stride=(1, 1), dilation=(1, 1), input_offset=0, output_offset=0, multiplier=1 << 30, shift=1,
                activation="NONE", act_min=-128, act_max=127)
    g = Graph({t.name: t for t in (x, w3, w1, Tensor("y", (1, 5, 5, 4), "int8"), Tensor("m", (1, 3), "int8"))})
    # two pixels' patches and their copy interleaved by 16-byte chunk (the MVE kernel's pixel pairs)
    assert scratch_bytes(g, Op("c", "conv2d", ["x", "w", ""], ["y"], dict(conv, pad=(1, 1, 1, 1)))) == 2 * 27 + 2 * 32
    assert scratch_bytes(g, Op("c", "conv2d", ["x", "w1", ""], ["y"], dict(conv, pad=(0, 0, 0, 0)))) == 2 * 16
    mean = Op("m", "mean", ["x"], ["m"], {"axes": (1, 2), "input_offset": 0, "output_offset": 0, "count": 25,
                                          "multiplier": 1 << 30, "shift": 1, "mean_multiplier": 1 << 30,
                                          "mean_shift": 1})
    assert scratch_bytes(g, mean) == 4 * 3  # one int32 sum per output
    assert scratch_bytes(g, Op("r", "reshape", ["x"], ["y"])) == 0
    assert scratch_bytes(_mean_float_graph(), _mean_float_graph().ops[0]) == 0  # refused later, when resolved


def test_tflite_registrations():
    import tflite

    assert set(SUPPORTED) >= {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "AVERAGE_POOL_2D",
                              "MAX_POOL_2D", "RESHAPE", "SOFTMAX", "QUANTIZE", "DEQUANTIZE", "PAD", "PADV2",
                              "REDUCE_MAX", "MEAN"}
    for name in SUPPORTED:  # a real builtin, read by a mapping that says how many inputs it takes
        assert hasattr(tflite.BuiltinOperator, name) and ARITY[name][0] <= ARITY[name][1], name
        assert all("tflite" in SPECS[k].targets for k in OPERATORS[name][1]), name
    assert OPERATORS["QUANTIZE"][1] == ("quantize", "requantize")
    # the encoded-weights reader follows the weights trait, as the codecs' table does
    assert _OPS == {"CONV_2D": "conv2d", "FULLY_CONNECTED": "fully_connected", "DEPTHWISE_CONV_2D": "depthwise_conv2d",
                    "UNIDIRECTIONAL_SEQUENCE_LSTM": "lstm"}
    assert {k: tuple(s.weight_formats) for k, s in SPECS.items() if s.weight_formats} == SPARSE_KERNELS
    assert {k for k, s in SPECS.items() if s.weight_inputs} == set(SPARSE_KERNELS)


def test_hls_layer_inputs_follow_the_input_roles():
    a, b, y = (Tensor(n, (1, 4), "int8") for n in ("a", "b", "y"))
    k = Tensor("k", (1, 4), "int8", data=np.arange(4, dtype=np.int8))
    attrs = dict(input1_offset=0, input2_offset=0, output_offset=0, output_multiplier=1 << 30, output_shift=1,
                 activation="NONE", act_min=-128, act_max=127)
    two = Graph({t.name: t for t in (a, b, y)}, [Op("m", "mul", ["a", "b"], ["y"], dict(attrs))], ["a", "b"], ["y"])
    assert build_plan(two, "dense", 1).layers[0].inputs == ["a", "b"]
    one = Graph({t.name: t for t in (a, k, y)}, [Op("m", "mul", ["a", "k"], ["y"], dict(attrs))], ["a"], ["y"])
    layer = build_plan(one, "dense", 1).layers[0]
    assert layer.inputs == ["a"] and layer.ctx["args"] == ["in0", "const_b"]


OLD_AND_NEW = [  # (kind, attrs) as an earlier dmxgen saved them -> the kind they are now
    ("quantize", {"mode": "requantize", "input_offset": 3, "output_offset": -7, "multiplier": 1518500250,
                  "shift": 1}, "requantize"),
    ("quantize", {"mode": "float", "scale": 0.05, "zero_point": -3}, "quantize"),
    ("mean", {"mode": "int8", "axes": (1,), "input_offset": 3, "output_offset": 1, "count": 4,
              "multiplier": 1518500250, "shift": 0, "mean_multiplier": 1518500250, "mean_shift": -2}, "mean"),
    ("mean", {"mode": "float", "axes": (1,)}, "mean_float"),
]


@pytest.mark.parametrize("old_kind, old_attrs, new_kind", OLD_AND_NEW, ids=[c[2] for c in OLD_AND_NEW])
def test_a_pt2_saved_with_mode_strings_still_loads(tmp_path, old_kind, old_attrs, new_kind):
    """load_torch maps an old kind + mode to the new kind; the reference computes the same values."""
    from dmxgen.frontends.torch import load_torch

    in_dtype = "float32" if (old_kind, old_attrs["mode"]) == ("quantize", "float") else (
        "float32" if new_kind == "mean_float" else "int8")
    out_dtype = "float32" if new_kind == "mean_float" else "int8"
    out_shape = (1, 1) if old_kind == "mean" else (1, 4)
    new_attrs = {k: v for k, v in old_attrs.items() if k != "mode"}
    tensors = {"x": Tensor("x", (1, 4), in_dtype), "y": Tensor("y", out_shape, out_dtype)}
    new = Graph(dict(tensors), [Op("op0", new_kind, ["x"], ["y"], new_attrs)], ["x"], ["y"])
    doc = json.loads(torch_io.dumps(new))
    doc["ops"][0]["kind"] = old_kind
    doc["ops"][0]["attrs"]["mode"] = old_attrs["mode"]  # what dumps() wrote before the split
    path = tmp_path / "old.pt2"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("old/extra/" + torch_io.ENTRY, json.dumps(doc))
    loaded = load_torch(path)
    assert [op.kind for op in loaded.ops] == [new_kind] and "mode" not in loaded.ops[0].attrs
    x = (np.array([[-128, -5, 40, 127]], np.int8) if in_dtype == "int8"
         else np.array([[-1.25, -0.25, 0.3, 6.0]], np.float32))
    got, want = reference.run(loaded, [x])["y"], reference.run(new, [x])["y"]
    assert got.dtype == want.dtype and np.array_equal(got, want)


def test_an_unknown_old_mode_is_one_clear_error(tmp_path):
    from dmxgen.frontends.torch import load_torch

    g = Graph({n: Tensor(n, (1, 4), "int8") for n in "xy"},
              [Op("q", "requantize", ["x"], ["y"], {"input_offset": 0, "output_offset": 0, "multiplier": 1 << 30,
                                                    "shift": 1})], ["x"], ["y"])
    doc = json.loads(torch_io.dumps(g))
    doc["ops"][0]["kind"], doc["ops"][0]["attrs"]["mode"] = "quantize", "round"
    path = tmp_path / "old.pt2"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(torch_io.ENTRY, json.dumps(doc))
    with pytest.raises(DmxError, match=r"corrupt dmxgen graph \(ValueError: op kind 'quantize' with mode 'round' "
                                       r"is not one dmxgen knows \(float, requantize\)\)"):
        load_torch(path)


def test_the_torch_frontend_writes_only_kinds_that_claim_it():
    pytest.importorskip("torch")
    from dmxgen.frontends.torch_graph import _Exporter

    exporter = object.__new__(_Exporter)  # only add_op is exercised
    exporter.g = Graph({n: Tensor(n, (1, 4), "int8") for n in "xy"})
    exporter.add_op("q", "requantize", ["x"], "y", {"input_offset": 0, "output_offset": 0, "multiplier": 1 << 30,
                                                    "shift": 1})
    assert [op.kind for op in exporter.g.ops] == ["requantize"]
    with pytest.raises(RegistrationError, match=r"wrote a pad op; ops/pad.py does not list 'torch' in targets"):
        exporter.add_op("p", "pad", ["x"], "y", {"paddings": ((0, 0), (0, 0)), "value": 0})


def test_inspect_support_prints_the_table_and_json():
    import subprocess
    import sys

    def run(*args):
        return subprocess.run([sys.executable, "-m", "dmxgen.cli", "inspect", *args], capture_output=True, text=True,
                              timeout=120, cwd=ROOT)

    r = run("--support")
    assert r.returncode == 0 and r.stdout == support.markdown()
    r = run("--support", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == {"ops": support.matrix()}
    r = run()
    assert r.returncode == 2 and "missing argument MODEL (or pass --support)" in r.stderr


def test_a_tflite_mapping_that_makes_an_unregistered_kind_is_a_bug(tmp_path, monkeypatch):
    from dmxgen.frontends import tflite

    from .test_quantize import quantize_model

    m, x, y = quantize_model(0.05, 3, "int8", 0.1, -2)
    path = m.save(tmp_path / "m.tflite", [x], [y])
    method, _ = tflite.OPERATORS["QUANTIZE"]
    monkeypatch.setitem(tflite.OPERATORS, "QUANTIZE", (method, ("quantize",)))
    with pytest.raises(RegistrationError, match="the QUANTIZE mapping made a requantize op; it is registered for quantize"):
        tflite.load_tflite(path)
