"""The size compress_to_size reports is what `dmxgen export` writes: manifest weight_bytes + param_bytes."""
from __future__ import annotations

import copy
import json

import pytest

import dmxgen
from dmxgen.commands.shrink import digits_loaders
from dmxgen.compress.sizing import model_bytes

from .conftest import export_and_verify, exporter_available

pytestmark = pytest.mark.skipif(not exporter_available(), reason="the C backend (dmxgen export) is not available")


def export(pt2, out, fmt: str) -> dict:
    """What `dmxgen export PT2 -o OUT --format FMT` does, in process (the CLI itself runs in the first test)."""
    from dmxgen.targets import export as export_c
    from dmxgen.frontends import load

    export_c(load(pt2), out, source=pt2, fmt=fmt, n_vectors=1)
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="module")
def shrunk(lenet, digits):
    net = lenet.train_float(digits, epochs=4, seed=0)
    train, test = digits_loaders(digits)
    start = 15.048  # kB: LeNet's dense int8 weights (13,584 B) and its bias/multiplier/shift arrays
    model, history = dmxgen.compress_to_size(net, 0.5 * start, train, test, epochs=1, storage="dcsr",
                                             separate_layers=False, accuracy_drop_limit=30.0, log=False)
    return model, history


def test_loop_size_equals_the_exported_manifest(shrunk, digits, tmp_path):
    model, h = shrunk
    assert h.start_bytes == 15_048 and h.reached and h.final_bytes <= h.target_bytes
    pt2 = dmxgen.save(model, tmp_path / "m.pt2", digits.x_test[:1])
    codes = tmp_path / "x.npy"
    import numpy as np

    np.save(codes, model.quantize_input(digits.x_test[:4]))
    out = export_and_verify(pt2, tmp_path / "c", "--format", "dcsr", "--input", str(codes))  # bit-exact C too
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["weight_bytes"] + manifest["param_bytes"] == h.final_bytes
    rows = {r["name"]: r for r in manifest["layers"] if r["op"] in ("conv2d", "fully_connected")}
    assert set(rows) == set(h.layers)
    for name, row in rows.items():
        assert (row["weight_bytes"], row["param_bytes"], row["format"]) == (
            h.layers[name]["weight_bytes"], h.layers[name]["param_bytes"], h.layers[name]["format"]), name


@pytest.mark.parametrize("fmt", ["auto", "csr", "dense"])
def test_sizing_matches_export_in_every_storage(shrunk, digits, tmp_path, fmt):
    model, _ = shrunk
    pt2 = dmxgen.save(model, tmp_path / "m.pt2", digits.x_test[:1])
    manifest = export(pt2, tmp_path / fmt, fmt)
    size = model_bytes(model, digits.x_test, fmt)
    assert (size.weight_bytes, size.param_bytes) == (manifest["weight_bytes"], manifest["param_bytes"])
    assert size.dense_weight_bytes == manifest["dense_weight_bytes"]


@pytest.mark.parametrize("fmt", ["dense", "auto"])
def test_sizing_of_int4_weights_matches_export(shrunk, digits, tmp_path, fmt):
    net = copy.deepcopy(shrunk[0].float_net)
    int4 = {"type:Conv2d": {"weight_format": "INT4", "weight_sparseness": "TOPK{0.3}"},
            "type:Linear": {"weight_format": "INT4"}}
    model = dmxgen.Model(net).transform(int4)
    with model.calibrating():
        model(digits.x_train)
    pt2 = dmxgen.save(model, tmp_path / "m4.pt2", digits.x_test[:1])
    manifest = export(pt2, tmp_path / fmt, fmt)
    size = model_bytes(model, digits.x_test, fmt)
    assert (size.weight_bytes, size.param_bytes) == (manifest["weight_bytes"], manifest["param_bytes"])
    if fmt == "dense":
        assert size.weight_bytes < size.dense_weight_bytes * 0.6  # two weights per byte


@pytest.mark.parametrize("storage", ["dcsr", "auto", "csr"])
def test_one_layer_re_encoded_equals_a_full_build(shrunk, digits, storage):
    """The loop's density tries re-encode only the layer whose mask changed (LayerSizer.layer_bytes);
    each try's figure is the one a whole new graph build gives."""
    from dmxgen.compress.sizing import LayerSizer
    from dmxgen.compress.sparsecomp import set_density

    model = copy.deepcopy(shrunk[0])
    sizer = LayerSizer(digits.x_test, storage)
    sizer.measure(model)
    assert set(sizer.maps) == set(model.weighted_layers())  # conv OHWI and the flattened fc1 both mapped
    builds = sizer.full_builds
    for name in model.weighted_layers():
        for density in (0.5, 0.1, 0.03):
            set_density(model, name, density)
            fast = sizer.layer_bytes(model, name)
            assert sizer.full_builds == builds  # no graph was built for the try
            assert fast == model_bytes(model, digits.x_test, storage).layers[name], (name, density)
