"""Helpers shared by the commands: loading models, making inputs, printing tables."""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from ..errors import DmxError
from ..graph import Graph


def load_model(path: str, semantics: str = "tflite", trust_pickle: bool = False) -> Graph:
    """A Graph from a .tflite (TFLite or TFLM semantics) or a model saved by dmxgen.save."""
    from ..frontends import load

    if str(path).endswith(".tflite"):
        return load(path, semantics=semantics)
    return load(path, trust_pickle=trust_pickle)


TRUST_PICKLE_HELP = ("Load a pickled PyTorch checkpoint (torch.save of a dmxgen.Model). Unpickling can run "
                     "arbitrary code, so only use it for files you made yourself.")


def input_range(graph: Graph, name: str) -> tuple[float, float] | None:
    """For a float input that is quantized right away, the real range its int8 covers."""
    for op in graph.consumers(name):
        if op.kind == "quantize" and op.attrs.get("mode") == "float":
            s, zp = op.attrs["scale"], op.attrs["zero_point"]
            return s * (-128 - zp), s * (127 - zp)
    return None


def random_inputs(graph: Graph, n: int, seed: int) -> list[list[np.ndarray]]:
    """n sets of inputs: uniform int8, or floats spread over the range the model quantizes."""
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(n):
        one = []
        for name in graph.inputs:
            t = graph.tensors[name]
            if t.dtype == "int8":
                one.append(rng.integers(-128, 128, size=t.shape, dtype=np.int64).astype(np.int8))
            elif t.dtype == "float32":
                lo, hi = input_range(graph, name) or (-1.0, 1.0)
                one.append(rng.uniform(lo, hi, size=t.shape).astype(np.float32))
            else:
                raise DmxError(f"cannot make random values for input {name!r} of type {t.dtype}")
        sets.append(one)
    return sets


def read_input_file(graph: Graph, path: str) -> list[list[np.ndarray]]:
    """Inputs from a .npy file: one or more copies of the (single) graph input.

    Float data for an int8 input is quantized with the input's scale and zero point.
    """
    p = Path(path)
    try:
        arr = np.load(p, allow_pickle=False)
    except FileNotFoundError:
        raise DmxError(f"{p}: no such file") from None
    except Exception as e:
        raise DmxError(f"{p}: not a readable .npy file ({e})") from None
    if len(graph.inputs) != 1:
        raise DmxError(f"{p}: --input works for single-input models; this one has {len(graph.inputs)}")
    t = graph.tensors[graph.inputs[0]]
    if arr.size == 0 or arr.size % t.size:
        raise DmxError(f"{p}: {arr.size} values is not a whole number of inputs of shape {list(t.shape)}")
    if t.dtype == "int8" and arr.dtype.kind == "f":
        q = t.quant
        if q is None:
            raise DmxError(f"{p}: float data for an int8 input without quantization parameters")
        arr = np.clip(np.floor(arr / q.s + 0.5) + q.zp, -128, 127)
    return [[x.astype(t.dtype).reshape(t.shape)] for x in arr.reshape(-1, t.size)]


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=_jsonable))


def _jsonable(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(type(o))


def table(rows: list[list], header: list[str]) -> str:
    """Plain aligned text table (numbers right-aligned)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(_isnum(r[i]) for r in cells[1:]) and rows for i in range(len(header))]
    lines = []
    for k, r in enumerate(cells):
        parts = [c.rjust(w) if numeric[i] and k else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(parts).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _isnum(s: str) -> bool:
    try:
        float(s.replace(",", "").rstrip("%x"))
        return True
    except ValueError:
        return s in ("-", "")
