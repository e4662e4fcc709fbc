"""The PyTorch example (LeNet on scikit-learn's digits, 90% pruned, int8) through the HLS target."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.backends.hls import write_hls
from dmxgen.backends.hls_csim import run_csim

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits_graph():
    """The compressed LeNet's integer graph and int8 test images (briefly trained: bit-exactness needs no accuracy)."""
    from models import lenet  # the repository's models/ (the checkout root is on sys.path under pytest)

    torch.set_num_threads(1)
    data = lenet.digits_data(0)
    net = lenet.train_float(data, epochs=1, seed=0)
    model = lenet.compress(copy.deepcopy(net), data, lenet.CONFIG, epochs=1, seed=0, steps=(0.3,))
    graph = model.to_graph(data.x_test[:1])
    codes = model.quantize_input(data.x_test[:6])
    shape = graph.tensors[graph.inputs[0]].shape
    return graph, [[np.asarray(c).reshape(shape)] for c in codes]


@pytest.mark.parametrize("weight_format,interface", [("dcsr", "array"), ("csr", "stream")])
def test_digits_cnn_csim_bit_exact(digits_graph, tmp_path, weight_format, interface):
    graph, ins = digits_graph
    expected = [reference.run(graph, v) for v in ins]
    m = write_hls(graph, tmp_path, weight_format=weight_format, interface=interface, sample_inputs=ins,
                  expected_outputs=expected)
    assert [la["op"] for la in m["layers"]] == ["conv2d", "max_pool2d", "conv2d", "max_pool2d", "fully_connected",
                                                 "fully_connected"]
    weighted = [la for la in m["layers"] if la["format"]]
    assert {la["format"] for la in weighted} == {weight_format}
    assert sum(la["bytes"] for la in weighted) < sum(la["dense_bytes"] for la in weighted) / 2  # 90% pruned
    r = run_csim(tmp_path, opt="-O1")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "PASS: 6 vectors, 60 output values bit-exact" in r.stdout
