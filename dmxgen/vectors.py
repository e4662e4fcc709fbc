"""Test vectors: seeded random inputs (and .npy / .npz inputs) with the reference's answers.

Every target's export stores them and `dmxgen verify` recomputes them from the
source model, so they live below both the commands and the backends. A vector
set holds one array per graph input and the reference's array per graph output,
in graph order. Export and verify ask for the same model, seed and count, and
the reference is the slow part, so the last few results are kept in memory for
the process (nothing is written anywhere).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import reference
from .errors import DmxError
from .graph import Graph
from .graph.fixedpoint import quantize_float
from .ops.gather import index_bound
from .progress import progress

_CACHE: OrderedDict[tuple, Vectors] = OrderedDict()
_CACHE_SIZE = 2


@dataclass
class Vectors:
    inputs: list[list[np.ndarray]]  # per set: one array per graph input, in graph order
    outputs: list[list[np.ndarray]]  # per set: the original graph's outputs, in graph order
    layers: list[dict[int, np.ndarray]]  # per set: op index of the lowered graph -> its (first) output
    random: int
    seed: int
    files: list[str]


def input_range(graph: Graph, name: str) -> tuple[float, float] | None:
    """For a float input that is quantized right away, the real range its int8 (int16) codes cover."""
    for op in graph.consumers(name):
        if op.kind == "quantize":
            s, zp = op.attrs["scale"], op.attrs["zero_point"]
            info = np.iinfo(graph.tensors[op.outputs[0]].dtype)
            return s * (int(info.min) - zp), s * (int(info.max) - zp)
    return None


def random_inputs(graph: Graph, n: int, seed: int) -> list[list[np.ndarray]]:
    """n sets of inputs: uniform int8 or int16 codes, floats spread over the range the model quantizes,
    or valid indices (uniform in [0, axis size)) for GATHER."""
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(n):
        one = []
        for name in graph.inputs:
            t = graph.tensors[name]
            if t.dtype in ("int8", "int16"):
                info = np.iinfo(t.dtype)
                one.append(rng.integers(info.min, info.max + 1, size=t.shape, dtype=np.int64).astype(t.dtype))
            elif t.dtype == "float32":
                lo, hi = input_range(graph, name) or (-1.0, 1.0)
                one.append(rng.uniform(lo, hi, size=t.shape).astype(np.float32))
            elif t.dtype in ("int32", "int64") and index_bound(graph, name) is not None:
                one.append(rng.integers(0, index_bound(graph, name), size=t.shape, dtype=np.int64).astype(t.dtype))
            else:
                raise DmxError(f"cannot make random values for input {name!r} of type {t.dtype}")
        sets.append(one)
    return sets


def read_input_file(graph: Graph, path: str) -> list[list[np.ndarray]]:
    """Inputs from a file: a .npy holds one or more copies of the (single) graph input; a .npz
    holds one array per graph input, named by the input tensor, with the same number of copies each.

    Float data for an int8 input is quantized with the input's scale and zero point,
    rounding as TFLite's QUANTIZE does (graph/fixedpoint.py's quantize_float).
    """
    p = Path(path)
    try:
        loaded = np.load(p, allow_pickle=False)
    except FileNotFoundError:
        raise DmxError(f"{p}: no such file") from None
    except Exception as e:
        raise DmxError(f"{p}: not a readable .npy or .npz file ({e})") from None
    if isinstance(loaded, np.ndarray):
        if len(graph.inputs) != 1:
            listed = ", ".join(repr(n) for n in graph.inputs)
            raise DmxError(f"{p}: a .npy holds one input; this model has {len(graph.inputs)} ({listed}): "
                           "give a .npz with one array per input name")
        return [[x] for x in _copies(graph, graph.inputs[0], loaded, p)]
    with loaded:
        arrays = {k: loaded[k] for k in loaded.files}
    unknown = sorted(set(arrays) - set(graph.inputs))
    missing = [n for n in graph.inputs if n not in arrays]
    if unknown or missing:
        raise DmxError(f"{p}: the .npz must hold exactly the model's inputs ({', '.join(map(repr, graph.inputs))}); "
                       + (f"{unknown[0]!r} is not one of them" if unknown else f"{missing[0]!r} is missing"))
    per_input = [_copies(graph, n, arrays[n], p) for n in graph.inputs]
    counts = {len(c) for c in per_input}
    if len(counts) != 1:
        raise DmxError(f"{p}: the inputs hold different numbers of copies "
                       f"({', '.join(f'{n!r}: {len(c)}' for n, c in zip(graph.inputs, per_input))})")
    return [list(one) for one in zip(*per_input)]


def _copies(graph: Graph, name: str, arr: np.ndarray, p: Path) -> list[np.ndarray]:
    t = graph.tensors[name]
    if arr.size == 0 or arr.size % t.size:
        raise DmxError(f"{p}: {arr.size} values is not a whole number of inputs of shape {list(t.shape)}"
                       + (f" (input {name!r})" if len(graph.inputs) > 1 else ""))
    if t.dtype in ("int8", "int16") and arr.dtype.kind == "f":
        q = t.quant
        if q is None:
            raise DmxError(f"{p}: float data for an {t.dtype} input without quantization parameters")
        arr = quantize_float(arr, q.s, q.zp, t.dtype)
    return [x.astype(t.dtype).reshape(t.shape) for x in arr.reshape(-1, t.size)]


def compute(graph: Graph, lowered: Graph, n_random: int, seed: int, input_files=(),
            key: tuple | None = None) -> Vectors:
    """Random inputs then those of `input_files`, outputs of `graph`, per-layer values of `lowered`.

    `key` (identifying the model file and how it was loaded) enables the in-memory cache.
    """
    full_key = None if key is None else (key, n_random, seed, tuple(str(f) for f in input_files))
    if full_key in _CACHE:
        _CACHE.move_to_end(full_key)
        return _CACHE[full_key]
    sets = random_inputs(graph, n_random, seed)
    for f in input_files:
        sets += read_input_file(graph, f)
    if not sets:
        raise DmxError("no test inputs: ask for at least one random input or give an --input FILE.npy")
    same = [id(o) for o in lowered.ops] == [id(o) for o in graph.ops]
    outputs, layers = [], []
    # run_each: the sets in batches through the reference, the same bits as one run per set
    originals = iter([None] * len(sets)) if same else reference.run_each(graph, sets)
    for values, original in progress(zip(reference.run_each(lowered, sets, keep=True), originals),
                                     total=len(sets), desc="test vectors", unit="vector", leave=False):
        layers.append({i: values[op.outputs[0]] for i, op in enumerate(lowered.ops)})
        outputs.append([np.asarray((values if same else original)[name]) for name in graph.outputs])
    v = Vectors(sets, outputs, layers, n_random, seed, [str(f) for f in input_files])
    if full_key is not None:
        _CACHE[full_key] = v
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return v
