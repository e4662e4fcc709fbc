"""Per-tensor format sizes for `dmxgen inspect MODEL --formats`.

Besides the sizes of all four formats and the format the storage policy
chooses (codecs/policy.py: what `dmxgen export --format auto` stores, INT4
packing and encodings kept from `dmxgen compress` included), it reproduces
the dCSR paper's own figure: the total over the tensors its compressor
selects (see `selected`).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import FORMATS, encode, policy
from .view import as_matrix, op_name

PAPER_MIN_ZEROS = (7, 10)  # at least 70% zeros, compared exactly as integers
SIZE_KEYS = ("dense", "csr", "csr_paper", "dcsr", "rle", "chosen_bytes")


@dataclass
class FormatsReport:
    """Rows (one dict per weight tensor), totals over all rows, totals over the paper's selection."""

    rows: list[dict[str, Any]]
    totals: dict[str, Any]
    selected_totals: dict[str, Any]


def selected(op_kind: str, weight: np.ndarray) -> bool:
    """The dCSR paper's selection: FULLY_CONNECTED or 1x1 CONV_2D with at least 70% zeros."""
    kind = op_name(op_kind)
    shape = np.shape(weight)
    if kind == "conv2d":
        if len(shape) != 4 or shape[1:3] != (1, 1):
            return False
    elif kind != "fully_connected":
        return False
    size = int(np.size(weight))
    zeros = size - int(np.count_nonzero(weight))
    num, den = PAPER_MIN_ZEROS
    return size > 0 and den * zeros >= num * size


def tensor_row(layer: str, op_kind: str, weight: np.ndarray, choice: policy.Choice | None = None) -> dict[str, Any]:
    """Sizes of one weight tensor in every format (int8 values), and the policy's choice:
    `choice` when given, else `auto` for an int8 tensor."""
    matrix = as_matrix(op_kind, weight)
    encs = {name: encode(name, matrix) for name in FORMATS}
    nbytes = {name: e.nbytes for name, e in encs.items()}
    if choice is None:
        choice = policy.choose(policy.EXPORT, layer, op_kind, weight)
    return {
        "layer": layer,
        "op": op_name(op_kind),
        "shape": tuple(int(x) for x in matrix.shape),
        "params": int(matrix.size),
        "sparsity": 1.0 - np.count_nonzero(matrix) / matrix.size,
        **nbytes,
        "csr_paper": encs["csr"].meta["nbytes_paper"],
        "dcsr_inserted": encs["dcsr"].meta["inserted_zeros"],
        "chosen": choice.fmt,
        "chosen_bytes": choice.nbytes,
        "selected": selected(op_kind, weight),
    }


def totals(rows: list[dict[str, Any]], only_selected: bool = False) -> dict[str, Any]:
    """Sums per format and compression ratios against dense int8 (0.0 when there is nothing)."""
    rows = [r for r in rows if r["selected"]] if only_selected else rows
    out: dict[str, Any] = {"tensors": len(rows), "params": sum(r["params"] for r in rows)}
    out.update({k: sum(r[k] for r in rows) for k in SIZE_KEYS})
    out["ratio"] = out["dense"] / out["chosen_bytes"] if out["chosen_bytes"] else 0.0
    out["ratio_dcsr"] = out["dense"] / out["dcsr"] if out["dcsr"] else 0.0
    return out


def format_table(layers: Iterable[tuple[str, str, np.ndarray]],
                 chosen: Mapping[str, policy.Choice] | None = None) -> FormatsReport:
    """Build the report for `(layer_name, op_kind, weight)` triples; `chosen` is
    `policy.assign`'s answer for the graph they come from."""
    chosen = chosen or {}
    rows = [tensor_row(name, kind, w, chosen.get(name)) for name, kind, w in layers]
    return FormatsReport(rows, totals(rows), totals(rows, only_selected=True))


def render_table(report: FormatsReport) -> str:
    """Plain-text aligned table; CSR is shown as stored and as papers count it (csr*)."""
    head = ("layer", "op", "shape", "zeros", "dense", "csr", "csr*", "dcsr", "rle", "chosen")
    body = [(r["layer"], r["op"], f"{r['shape'][0]}x{r['shape'][1]}", f"{r['sparsity']:.1%}",
             *(str(r[k]) for k in ("dense", "csr", "csr_paper", "dcsr", "rle")),
             f"{r['chosen']} {r['chosen_bytes']}" + (" *" if r["selected"] else ""))
            for r in report.rows]
    t = report.totals
    body.append(("total", f"{t['tensors']} tensors", f"{t['params']} params", "",
                 *(str(t[k]) for k in ("dense", "csr", "csr_paper", "dcsr", "rle")),
                 f"{t['chosen_bytes']} ({t['ratio']:.2f}x)"))
    width = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    left = {0, 1, 2}

    def fmt(line: tuple[str, ...]) -> str:
        cells = enumerate(zip(line, width, strict=True))
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in cells)

    lines = [fmt(head), "  ".join("-" * w for w in width), *(fmt(b) for b in body[:-1]),
             "  ".join("-" * w for w in width), fmt(body[-1])]
    s = report.selected_totals
    lines.append("")
    lines.append("csr* = 3*nnz + 2*R (published tables); * = selected by the dCSR paper's rule "
                 "(FC or 1x1 conv, >= 70% zeros)")
    if s["tensors"]:
        lines.append(f"selected: {s['tensors']} tensors, dense {s['dense']} B -> dCSR {s['dcsr']} B "
                     f"({s['ratio_dcsr']:.2f}x; CSR/dCSR {s['csr_paper'] / s['dcsr']:.2f}, "
                     f"RLE/dCSR {s['rle'] / s['dcsr']:.2f})")
    else:
        lines.append("selected: none")
    return "\n".join(lines)
