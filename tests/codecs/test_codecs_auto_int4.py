"""`--format auto` on INT4 layers compares the bytes the headers really hold (issue 10, item 3).

Dense INT4 is stored two weights a byte while CSR and dCSR keep int8 values, so
a half-pruned INT4 layer is smallest dense even where dCSR beats dense int8.
The sizes are recomputed here from the weights (formulas for dense and CSR, the
dCSR codec for dCSR) and from the array declarations in headers/.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dmxgen.codecs import encode
from dmxgen.codecs.view import as_matrix

torch = pytest.importorskip("torch")
nn = torch.nn

CTYPE_BYTES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4}
PARAMS = {"bias", "mult", "shift"}  # the other arrays of a matvec layer header are its weights


def _int4_autoencoder(path: Path) -> Path:
    """640-128-128-8-128-640 FC autoencoder, INT4 weights, half pruned; one layer 95% pruned."""
    from dmxgen.api import Model, save

    torch.manual_seed(0)
    dims = [640, 128, 128, 8, 128, 640]
    layers: list = []
    for a, b in zip(dims, dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    net = nn.Sequential(*layers[:-1]).eval()
    x = torch.randn(64, 640)
    config = {"type:Linear": {"weight_format": "INT4", "weight_sparseness": "TOPK{0.5}"},
              "2": {"weight_sparseness": "TOPK{0.05}"}}  # keeps 5%: CSR beats packed INT4
    m = Model(net).transform(config)
    with m.calibrating():
        m(x)
    return save(m.eval(), path, x)


def _expected_sizes(matrix: np.ndarray) -> dict[str, int]:
    rows, cols = matrix.shape
    nnz = int(np.count_nonzero(matrix))
    return {"dense": rows * ((cols + 1) // 2),  # INT4, two a byte, rows start on a byte
            "csr": 3 * nnz + 2 * (rows + 1),  # int8 values, uint16 columns and row pointers
            "dcsr": encode("dcsr", matrix).nbytes}


def _header_weight_bytes(header: Path, c_name: str) -> int:
    decl = re.compile(rf"static const (\w+) dmx_l_{c_name}__(\w+)\[(\d+)\]")
    found = decl.findall(header.read_text())
    assert found, header
    return sum(CTYPE_BYTES[ctype] * int(n) for ctype, name, n in found if name not in PARAMS)


def test_auto_picks_the_fewest_stored_bytes_for_int4(tmp_path):
    from dmxgen.frontends import load

    model = _int4_autoencoder(tmp_path / "ae.pt2")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "dmxgen.cli", "export", str(model), "-o", str(out), "--format", "auto"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    graph = load(model)
    manifest = json.loads((out / "manifest.json").read_text())
    chosen = []
    for layer in manifest["layers"]:
        op = next(o for o in graph.ops if o.name == layer["name"])
        assert op.attrs.get("weight_bits") == 4
        want = _expected_sizes(as_matrix(op.kind, graph.weights(op).data))
        best = min(want, key=lambda f: (want[f], list(want).index(f)))
        assert layer["format"] == best, (layer["name"], want)
        assert layer["format_bytes"] == want, layer["name"]
        assert layer["weight_bytes"] == want[best]
        assert _header_weight_bytes(out / "headers" / f"{layer['c_name']}.h", layer["c_name"]) == want[best]
        chosen.append(best)
    assert "dense" in chosen and "csr" in chosen  # both sides of the comparison are exercised
    assert manifest["weight_bytes"] == sum(la["weight_bytes"] for la in manifest["layers"])


def test_inspect_formats_counts_int4_as_the_export_stores_it(tmp_path):
    """`dmxgen inspect --formats` reports the policy's choice: packed dense for INT4 layers."""
    from dmxgen.frontends import load

    model = _int4_autoencoder(tmp_path / "ae.pt2")
    r = subprocess.run([sys.executable, "-m", "dmxgen.cli", "inspect", str(model), "--formats", "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["formats"]["rows"]
    graph = load(model)
    chosen = []
    for row in rows:
        op = next(o for o in graph.ops if o.name == row["layer"])
        matrix = as_matrix(op.kind, graph.weights(op).data)
        want = _expected_sizes(matrix)
        best = min(want, key=lambda f: (want[f], list(want).index(f)))
        assert (row["chosen"], row["chosen_bytes"]) == (best, want[best]), row["layer"]
        assert row["dense"] == matrix.size  # the dense column stays int8, the baseline of the ratios
        chosen.append(best)
    assert "dense" in chosen and "csr" in chosen
