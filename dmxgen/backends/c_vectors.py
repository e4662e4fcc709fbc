"""Test vectors: seeded random inputs (and .npy inputs) with the reference's answers.

Export stores them in the folder; verify recomputes them from the source model.
Both ask for the same model, seed and count, and the reference is the slow
part, so the last few results are kept in memory for the process (nothing
is written anywhere).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .. import reference
from ..errors import DmxError
from ..graph import Graph

_CACHE: OrderedDict[tuple, Vectors] = OrderedDict()
_CACHE_SIZE = 2


@dataclass
class Vectors:
    inputs: list[np.ndarray]  # one array per set (the graph's single input)
    outputs: list[np.ndarray]  # the original graph's output, per set
    layers: list[dict[int, np.ndarray]]  # per set: op index of the lowered graph -> its output
    random: int
    seed: int
    files: list[str]


def compute(graph: Graph, lowered: Graph, n_random: int, seed: int, input_files=(),
            key: tuple | None = None) -> Vectors:
    """Inputs from `dmxgen verify`'s generator, outputs of `graph`, per-layer values of `lowered`.

    `key` (identifying the model file and how it was loaded) enables the in-memory cache.
    """
    from ..commands.common import random_inputs, read_input_file

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
    for s in sets:
        values = reference.run(lowered, s, keep=True)
        layers.append({i: values[op.outputs[0]] for i, op in enumerate(lowered.ops)})
        out = values[graph.outputs[0]] if same else reference.run(graph, s)[graph.outputs[0]]
        outputs.append(np.asarray(out))
    v = Vectors([s[0] for s in sets], outputs, layers, n_random, seed, [str(f) for f in input_files])
    if full_key is not None:
        _CACHE[full_key] = v
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return v
