"""The golden model: a numpy interpreter over the integer Graph.

Each op kind's kernel is its spec's `reference` (dmxgen/ops/<kind>.py);
KERNELS maps kind -> kernel, derived from the specs, and is what run_op calls
(tests replace an entry to check that a wrong kernel is noticed). Integer
arithmetic only on the int8 path (int64 where TFLite widens, float64 matmul
only where every partial sum is an integer below 2**53, so it is exact).

Runs hold BLAS to one thread (threadpoolctl, when installed): the reference's
matmuls are small, and OpenBLAS's default threads make them many times slower
on a busy machine. `run_each` runs many input sets at once, one kernel call per
op for a whole chunk of sets where the op allows a leading batch dim, with the
same bits as one `run` per set.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import replace
from typing import Callable, Iterator

import numpy as np

from ..errors import DmxError
from ..graph import Graph, Op
from ..ops import SPECS

KERNELS: dict[str, Callable] = {kind: spec.reference for kind, spec in SPECS.items()}


def run_op_outputs(graph: Graph, op: Op, values: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Every output of one op, in op.outputs order.

    A kernel of a one-output kind gets the output Tensor and returns one array; a kernel of a kind
    whose spec declares outputs > 1 gets the tuple of output Tensors and returns one array each.
    """
    return _call(op, [values[n] if n else None for n in op.inputs], [graph.tensors[n] for n in op.outputs])


def _call(op: Op, args: list, outs: list) -> list[np.ndarray]:
    """The kernel of `op` on `args`, each result typed and shaped as its Tensor in `outs`."""
    if op.spec.outputs == 1:
        results = [KERNELS[op.kind](op, args, outs[0])]
    else:
        results = KERNELS[op.kind](op, args, tuple(outs))
        if not isinstance(results, (tuple, list)) or len(results) != len(outs):
            raise DmxError(f"op {op.name!r} ({op.kind}): the reference kernel returned "
                           f"{len(results) if isinstance(results, (tuple, list)) else 'one'} values for "
                           f"{len(outs)} outputs")
    return [np.asarray(r).astype(t.dtype, copy=False).reshape(t.shape) for r, t in zip(results, outs)]


def run_op(graph: Graph, op: Op, values: dict[str, np.ndarray]) -> np.ndarray:
    """The op's (first) output."""
    return run_op_outputs(graph, op, values)[0]


def _set_inputs(graph: Graph, names: list[str], inputs, values: dict[str, np.ndarray]) -> None:
    """Checked, typed values of the tensors `names` from a list (in that order) or a name->array dict."""
    if not isinstance(inputs, dict):
        inputs = dict(zip(names, inputs))
    for name in names:
        t = graph.tensors[name]
        if name not in inputs:
            raise DmxError(f"no value given for graph input {name!r}")
        x = np.asarray(inputs[name])
        if x.size != t.size:
            raise DmxError(f"input {name!r} needs {t.size} values of shape {list(t.shape)}, got shape {list(x.shape)}")
        values[name] = x.astype(t.dtype).reshape(t.shape)


def _execute(graph: Graph, indices: list[int], values: dict[str, np.ndarray], keep: bool,
             live: set[str] = frozenset()) -> None:
    """Run ops `indices` (graph order) over `values`; unless keep, free what no later op reads
    (graph outputs and the tensors in `live` stay)."""
    last = {} if keep else graph.last_uses()
    for i in indices:
        op = graph.ops[i]
        for name, value in zip(op.outputs, run_op_outputs(graph, op, values)):
            values[name] = value
        for n in op.inputs:
            if n and last.get(n) == i and not graph.tensors[n].is_const and n not in live:
                values.pop(n, None)


_BLAS_LOCK = threading.Lock()
_BLAS_DEPTH = 0
_BLAS: list = []  # [threadpoolctl's controller, or None without threadpoolctl], made on first use
_BLAS_LIMIT: list = []  # the limit in force while a run is inside single_threaded_blas


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS at one thread within the block (outermost block only; no limit without threadpoolctl)."""
    global _BLAS_DEPTH
    with _BLAS_LOCK:
        _BLAS_DEPTH += 1
        if _BLAS_DEPTH == 1:
            if not _BLAS:
                try:
                    from threadpoolctl import ThreadpoolController
                    _BLAS.append(ThreadpoolController())
                except Exception:  # not installed (or it cannot inspect this process): run unlimited
                    _BLAS.append(None)
            if _BLAS[0] is not None:
                try:
                    _BLAS_LIMIT.append(_BLAS[0].limit(limits=1, user_api="blas"))
                except Exception:
                    pass
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_DEPTH -= 1
            if _BLAS_DEPTH == 0 and _BLAS_LIMIT:
                _BLAS_LIMIT.pop().restore_original_limits()


def run(graph: Graph, inputs, keep: bool = False) -> dict[str, np.ndarray]:
    """Run the graph; `inputs` is a list (graph input order) or a name->array dict.

    Returns the graph outputs by name, or every tensor's value when keep=True.
    """
    values: dict[str, np.ndarray] = {n: t.data for n, t in graph.tensors.items() if t.is_const}
    _set_inputs(graph, graph.inputs, inputs, values)
    with single_threaded_blas():
        _execute(graph, list(range(len(graph.ops))), values, keep)
    if keep:
        return values
    return {n: values[n] for n in graph.outputs}


def run_entry(graph: Graph, name: str, inputs, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run one entry point (graph/entries.py), as the exported C runs dmx_model_<name>.

    `inputs` is a list (the entry's input order) or a name->array dict. `state` stands for the
    arena between calls: it holds the tensors earlier entries computed for later ones, and this
    call adds its own (pass the same dict to the entries in order; start with {}). Returns the
    entry's outputs by name.
    """
    entries = graph.entries
    if name not in entries:
        raise DmxError(f"the graph has no entry point {name!r} (it has {', '.join(map(repr, entries))})")
    from ..graph.entries import cross_entry

    entry, indices = entries[name], graph.entry_ops()[name]
    crossing = cross_entry(graph)
    values: dict[str, np.ndarray] = {n: t.data for n, t in graph.tensors.items() if t.is_const}
    _set_inputs(graph, entry.inputs, inputs, values)
    for t, (made, read) in crossing.items():
        if read == name and made != name:
            if t not in state:
                raise DmxError(f"entry {name!r} reads {t!r} from entry {made!r}; run {made!r} first")
            values[t] = state[t]
    with single_threaded_blas():
        _execute(graph, indices, values, keep=False, live=set(crossing))
    state.update({t: values[t] for t, (made, _) in crossing.items() if made == name})
    return {n: values[n] for n in entry.outputs}


# -- many input sets at once ------------------------------------------------------------------------
# Kinds whose kernel treats a leading dim as a batch of independent images/rows (read from each
# kernel: NHWC windows with n, x.reshape(-1, K) rows, elementwise or broadcast over trailing dims, last-
# axis rows, reductions and pads that leave axis 0 alone). Every other op runs once per set.
def _axis_not_0(axis, ndim: int) -> bool:
    return int(axis) % max(ndim, 1) != 0


def _weights_const(graph: Graph, op: Op) -> bool:
    return all(not n or graph.tensors[n].is_const for n in op.inputs[1:])


def _inputs_not_const(graph: Graph, op: Op) -> bool:
    return all(n and not graph.tensors[n].is_const for n in op.inputs)


def _same_rank(graph: Graph, op: Op) -> bool:
    """Broadcasting inputs that vary per set have the output's rank, so the batch dims line up."""
    rank = len(graph.tensors[op.outputs[0]].shape)
    return all(len(graph.tensors[n].shape) == rank for n in op.inputs if n and not graph.tensors[n].is_const)


def _pads_not_0(graph: Graph, op: Op) -> bool:
    return tuple(op.a.paddings[0]) == (0, 0)


def _axes_not_0(graph: Graph, op: Op) -> bool:
    ndim = len(graph.tensors[op.inputs[0]].shape)
    return all(_axis_not_0(ax, ndim) for ax in op.a.axes)


def _always(graph: Graph, op: Op) -> bool:
    return True


BATCHED: dict[str, Callable[[Graph, Op], bool]] = {
    **dict.fromkeys(("conv2d", "depthwise_conv2d", "fully_connected"), _weights_const),
    **dict.fromkeys(("avg_pool2d", "max_pool2d", "reshape", "quantize", "dequantize", "requantize", "lut",
                     "logistic16", "tanh16", "affine", "prelu", "softmax", "softmax16", "log_softmax",
                     "softmax_gemmlowp"), _always),
    **dict.fromkeys(("add", "sub", "mul", "squared_difference", "maximum", "minimum"), _same_rank),
    **dict.fromkeys(("pad", "mirror_pad"), _pads_not_0),
    **dict.fromkeys(("mean", "sum", "reduce_max", "reduce_min"), _axes_not_0),
    "concat": lambda g, op: _inputs_not_const(g, op) and _axis_not_0(op.a.axis, len(g.tensors[op.inputs[0]].shape)),
    "transpose": lambda g, op: int(op.a.perm[0]) == 0,
    "arg_max": lambda g, op: _axis_not_0(op.a.axis, len(g.tensors[op.inputs[0]].shape)),
    "arg_min": lambda g, op: _axis_not_0(op.a.axis, len(g.tensors[op.inputs[0]].shape)),
}


def batchable(graph: Graph, op: Op) -> bool:
    """One kernel call can run a batch of sets: a kind in BATCHED whose condition holds, one output,
    and every tensor that varies per set of leading dim 1 (then folded into the batch)."""
    if op.kind not in BATCHED or op.spec.outputs != 1 or KERNELS[op.kind] != SPECS[op.kind].reference:
        return False  # a kernel replaced by a test keeps its one-set calls
    varying = [graph.tensors[n] for n in op.inputs if n and not graph.tensors[n].is_const]
    varying.append(graph.tensors[op.outputs[0]])
    return all(t.shape and t.shape[0] == 1 for t in varying) and BATCHED[op.kind](graph, op)


def _batch_bytes(graph: Graph) -> int:
    """Rough bytes one set takes in the largest op of a batched run (tensors, conv patches as float64)."""
    worst = 1
    for op in graph.ops:
        total = sum(graph.tensors[n].size for n in (*op.inputs, *op.outputs) if n and not graph.tensors[n].is_const)
        if op.kind in ("conv2d", "depthwise_conv2d") and len(op.inputs) > 1:
            w, out = graph.tensors[op.inputs[1]].shape, graph.tensors[op.outputs[0]]
            total += out.size // max(out.shape[-1], 1) * int(np.prod(w[1:]))
        worst = max(worst, total)
    return 16 * worst


BATCH_BYTES = 256 << 20  # working memory a chunk of sets may take
MAX_BATCH = 16


def _run_batch(graph: Graph, sets: list, keep: bool) -> dict[str, np.ndarray]:
    """Every tensor's (without keep: the graph outputs') values for all `sets`, stacked on a new axis 0."""
    k = len(sets)
    consts = {n: t.data for n, t in graph.tensors.items() if t.is_const}
    typed = []
    for s in sets:
        one: dict[str, np.ndarray] = {}
        _set_inputs(graph, graph.inputs, s, one)
        typed.append(one)
    values = {name: np.stack([one[name] for one in typed]) for name in graph.inputs}
    last = {} if keep else graph.last_uses()
    for i, op in enumerate(graph.ops):
        outs = [graph.tensors[n] for n in op.outputs]
        if batchable(graph, op):  # sets folded into the leading dim 1 of every varying tensor
            args = [None if not n else consts[n] if n in consts else
                    values[n].reshape((k,) + graph.tensors[n].shape[1:]) for n in op.inputs]
            t = outs[0]
            result = _call(op, args, [replace(t, shape=(k,) + t.shape[1:])])[0]
            values[t.name] = result.reshape((k,) + t.shape)
        else:
            per_set = [_call(op, [None if not n else consts[n] if n in consts else values[n][j, ...]
                                  for n in op.inputs], outs) for j in range(k)]
            for idx, t in enumerate(outs):
                values[t.name] = np.stack([r[idx] for r in per_set])
        for n in op.inputs:
            if n and last.get(n) == i and n not in consts:
                values.pop(n, None)
    return values


def chunks(graph: Graph, n: int) -> int:
    """How many sets `run_each` runs together: MAX_BATCH, fewer when one set's working memory is large."""
    return max(1, min(n, MAX_BATCH, BATCH_BYTES // _batch_bytes(graph)))


def run_each(graph: Graph, input_sets, keep: bool = False) -> Iterator[dict[str, np.ndarray]]:
    """What `run(graph, s, keep)` returns for each s of `input_sets`, bit for bit, in order.

    The sets go through in chunks: an op in BATCHED runs once per chunk on the sets stacked along its
    leading dim; any other op runs once per set. Faster than one run per set (fewer kernel calls,
    bigger matmuls) and exact, since each batched kernel computes every leading index on its own.
    """
    input_sets = list(input_sets)
    step = chunks(graph, len(input_sets)) if input_sets else 1
    for start in range(0, len(input_sets), step):
        part = input_sets[start:start + step]
        with single_threaded_blas():
            values = _run_batch(graph, part, keep)
        names = list(graph.tensors) if keep else graph.outputs
        for j in range(len(part)):
            yield {n: (graph.tensors[n].data if graph.tensors[n].is_const else values[n][j, ...])
                   for n in names if n in values or graph.tensors[n].is_const}
