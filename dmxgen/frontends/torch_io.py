"""The integer Graph as JSON: what dmxgen.save stores inside a .pt2 and load_torch reads.

Plain JSON (arrays as base64 of their little-endian bytes), so reading a
saved model never unpickles anything and never imports torch.
"""
from __future__ import annotations

import base64
import json

import numpy as np

from ..errors import DmxError
from ..graph import Graph, Op, QuantParams, Tensor
from ..graph.entries import Entry

FORMAT = "dmxgen-graph"
VERSION = 1
ENTRY = "dmxgen_graph.json"  # the extra file's name inside the .pt2 archive


def _array(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a)
    return {"dtype": a.dtype.str.lstrip("<>|="), "shape": list(a.shape),
            "b64": base64.b64encode(a.astype(a.dtype.newbyteorder("<")).tobytes()).decode("ascii")}


def _unarray(d: dict) -> np.ndarray:
    dt = np.dtype(d["dtype"]).newbyteorder("<")
    return np.frombuffer(base64.b64decode(d["b64"]), dtype=dt).astype(dt.newbyteorder("=")).reshape(d["shape"])


def _enc(v):
    if isinstance(v, np.ndarray):
        return {"__ndarray__": _array(v)}
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, tuple):
        return {"__tuple__": [_enc(x) for x in v]}
    if isinstance(v, list):
        return [_enc(x) for x in v]
    if isinstance(v, dict):
        return {"__dict__": {str(k): _enc(x) for k, x in v.items()}}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f"cannot store attribute value of type {type(v).__name__}")


def _dec(v):
    if isinstance(v, dict):
        if "__ndarray__" in v:
            return _unarray(v["__ndarray__"])
        if "__tuple__" in v:
            return tuple(_dec(x) for x in v["__tuple__"])
        if "__dict__" in v:
            return {k: _dec(x) for k, x in v["__dict__"].items()}
        raise ValueError("unexpected mapping")
    if isinstance(v, list):
        return [_dec(x) for x in v]
    return v


# Kinds that chose their arithmetic with a mode attribute before each mode became its own kind:
# kind -> (mode attribute, {mode: new kind}). Graphs saved by earlier versions still load.
_MODES = {"quantize": ("mode", {"float": "quantize", "requantize": "requantize"}),
          "mean": ("mode", {"float": "mean_float", "int8": "mean"}),
          "softmax": ("algorithm", {"float_table": "softmax", "gemmlowp": "softmax_gemmlowp"})}


def upgrade_op(kind: str, attrs: dict) -> tuple[str, dict]:
    """The kind and attrs an op saved with a mode attribute has now (others unchanged)."""
    if kind not in _MODES or _MODES[kind][0] not in attrs:
        return kind, attrs
    key, kinds = _MODES[kind]
    mode = attrs[key]
    if mode not in kinds:
        raise ValueError(f"op kind {kind!r} with {key} {mode!r} is not one dmxgen knows ({', '.join(kinds)})")
    return kinds[mode], {k: v for k, v in attrs.items() if k != key and v is not None}


def dumps(graph: Graph, meta: dict | None = None) -> str:
    tensors = []
    for t in graph.tensors.values():
        q = None
        if t.quant is not None:
            q = {"scale": [float(s) for s in t.quant.scale], "zero_point": [int(z) for z in t.quant.zero_point],
                 "axis": t.quant.axis}
        tensors.append({"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "quant": q,
                        "data": None if t.data is None else _array(t.data)})
    ops = [{"name": op.name, "kind": op.kind, "inputs": op.inputs, "outputs": op.outputs,
            "attrs": {k: _enc(v) for k, v in op.attrs.items()}} for op in graph.ops]
    doc = {"format": FORMAT, "version": VERSION, "inputs": graph.inputs, "outputs": graph.outputs,
           "tensors": tensors, "ops": ops, "meta": meta or {}}
    if graph.entry_points:  # optional keys: a graph without them is stored as before
        doc["entries"] = {n: {"inputs": e.inputs, "outputs": e.outputs, "ops": e.ops}
                          for n, e in graph.entry_points.items()}
    if graph.early_exit:
        doc["early_exit"] = {n: list(v) for n, v in graph.early_exit.items()}
    return json.dumps(doc, separators=(",", ":"))


def loads(text: str | bytes, source: str = "") -> tuple[Graph, dict]:
    """(Graph, meta) from dumps() output; a malformed document is a DmxError naming `source`."""
    try:
        doc = json.loads(text)
        if doc.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document")
        if doc.get("version") != VERSION:
            raise ValueError(f"version {doc.get('version')} is not supported (this dmxgen reads {VERSION})")
        g = Graph(source=source)
        for t in doc["tensors"]:
            q = t["quant"]
            quant = None if q is None else QuantParams(np.array(q["scale"], np.float32),
                                                       np.array(q["zero_point"], np.int64), q["axis"])
            data = None if t["data"] is None else _unarray(t["data"])
            g.add_tensor(Tensor(t["name"], tuple(t["shape"]), t["dtype"], quant, data))
        for o in doc["ops"]:
            kind, attrs = upgrade_op(o["kind"], {k: _dec(v) for k, v in o["attrs"].items()})
            g.ops.append(Op(o["name"], kind, list(o["inputs"]), list(o["outputs"]), attrs))
        g.inputs, g.outputs = list(doc["inputs"]), list(doc["outputs"])
        g.entry_points = {n: Entry(list(e["inputs"]), list(e["outputs"]), None if e["ops"] is None else list(e["ops"]))
                          for n, e in doc.get("entries", {}).items()}
        g.early_exit = {n: (str(t), str(kind), int(thr)) for n, (t, kind, thr) in doc.get("early_exit", {}).items()}
    except DmxError:
        raise
    except Exception as e:
        raise DmxError(f"{source}: corrupt dmxgen graph ({type(e).__name__}: {e})") from None
    return g, doc.get("meta", {})
