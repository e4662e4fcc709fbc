"""HLS backend: the integer graph as Vitis HLS C++ with a bit-exact C-simulation testbench.

`write_hls` writes OUT/hls/: top.h/top.cpp (one top function, array or
AXI-stream interface), layers/<layer>.h (ROM arrays and a config struct per
layer), kernels/ (the C++ kernel templates the model uses), tb.cpp with
tb_data/ (the reference's inputs and outputs), run_hls.tcl and manifest.json.
`make -C hls csim MODEL=OUT` builds and runs it with g++ (docs/hls.md).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jinja2
import numpy as np

from ..codecs.policy import HLS as HLS_STORAGE
from ..codecs.policy import PolicyError
from ..errors import DmxError
from ..graph import Graph
from .hls_ops import HLS_BUILDERS
from .hls_plan import INTERFACES, Plan, Port, array_wiring, build_plan, hls_storage, stream_wiring

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "hls"
TOP = "dmx_top"
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def write_hls(graph: Graph, out_dir: Path, *, weight_format: str = HLS_STORAGE.fmt, interface: str = "array",
              sample_inputs: list[np.ndarray], expected_outputs: list[np.ndarray],
              part: str = "xcu250-figd2104-2L-e", clock_ns: float = 5.0, reuse_factor: int = 1,
              min_sparsity: float = HLS_STORAGE.min_sparsity, early_exit: dict | None = None,
              state_resets: list[bool] | None = None) -> dict:
    """Write out_dir/hls/ for `graph` and return its manifest (per-layer formats and bytes).

    sample_inputs / expected_outputs hold one entry per test vector: an array
    (single-input / single-output graphs), a list of arrays in graph order, or a
    name -> array dict as `dmxgen.reference.run` returns. Float32 graph edges
    (QUANTIZE in, DEQUANTIZE out) run on the host in tb.cpp; dmx_top's ports carry int8 or int16 codes.
    csr/dcsr apply to layers with a kernel in that format and at least
    `min_sparsity` zeros, as in the C target; the others stay dense.
    early_exit (an early-exit graph, docs/early-exit.md): {"kind", "thresholds", "softmax" (the
    heads' integer-softmax constants), "exits" and "outputs" (the reference's exit and logits per
    vector)}; top.cpp then adds dmx_top_ee with an exit port, and tb.cpp checks it.
    A model with state (an LSTM's, GRU's or SVDF's, spec.state_inputs) keeps it in static arrays across
    calls of dmx_top, which gets a reset_state port; tb.cpp runs the vectors as one sequence of calls,
    passing reset_state = state_resets[k] to call k (default: every vector from the reset state, as the
    reference runs each one and the C harness resets before each).
    """
    _check_options(weight_format, interface, part, clock_ns, reuse_factor, min_sparsity)
    ins = _vectors(graph, graph.inputs, sample_inputs, "sample input")
    outs = _vectors(graph, graph.outputs, expected_outputs, "expected output")
    if len(ins) != len(outs):
        raise DmxError(f"HLS backend: {len(ins)} sample inputs but {len(outs)} expected outputs")
    plan = build_plan(graph, weight_format, reuse_factor, min_sparsity)
    if plan.entries and interface == "stream":
        raise DmxError("HLS backend: entry points need the array interface (a tensor that crosses entries "
                       "stays in a static buffer between calls, which a DATAFLOW stream cannot hold)")
    stateful = [f"{layer.ident} ({layer.op.kind})" for layer in plan.layers if layer.ctx.get("states")]
    resets = _state_resets(state_resets, len(ins), bool(stateful))
    if stateful and early_exit:
        raise DmxError(f"HLS backend: an early-exit top keeps no state; this model has {', '.join(stateful)}")
    hls = Path(out_dir) / "hls"
    for sub in ("layers", "kernels", "tb_data"):
        shutil.rmtree(hls / sub, ignore_errors=True)
    for sub in ("layers", "kernels", "tb_data"):
        (hls / sub).mkdir(parents=True, exist_ok=True)
    manifest = _manifest(plan, weight_format, interface, part, clock_ns, reuse_factor, len(ins))
    manifest["min_sparsity"] = float(min_sparsity)
    env = _environment()
    ctx = {"model": Path(graph.source).name or "model", "interface": interface, "inputs": plan.inputs,
           "outputs": plan.outputs, "layers": plan.layers, "part": part, "clock_ns": clock_ns,
           "weight_format": weight_format, "reuse_factor": reuse_factor, "vectors": len(ins),
           "wiring": stream_wiring(plan) if interface == "stream" else array_wiring(plan)}
    ctx["entries"] = ctx["wiring"].get("entries", [])
    ctx["stateful"] = stateful  # the layers keeping state across calls: dmx_top takes reset_state
    for e in ctx["entries"]:
        e["stateful"] = any(call["layer"].ctx.get("states") for call in e["calls"])
    ctx["early_exit"] = _early_exit_ctx(plan, ctx["entries"], early_exit)
    if stateful:  # the layers keeping state across calls, and the tensors they keep
        manifest["state"] = [{"layer": layer.ident, "tensors": [s["tensor"] for s in layer.ctx["states"]]}
                             for layer in plan.layers if layer.ctx.get("states")]
    files = {"top.h": "top.h.j2", "top.cpp": "top.cpp.j2", "tb.cpp": "tb.cpp.j2", "run_hls.tcl": "run_hls.tcl.j2",
             "README.md": "README.md.j2"}
    for name, template in files.items():
        _write(hls / name, env.get_template(template).render(ctx))
    for layer in plan.layers:
        template = HLS_BUILDERS.lookup(layer.op.kind, f"layer {layer.op.name!r}").template
        text = env.get_template(template).render(ctx, layer=layer)
        _write(hls / "layers" / f"{layer.ident}.h", text)
    policy_kernels = {"dmx_softmax.h"} if early_exit and early_exit["kind"] == "softmax" else set()
    for kernel in sorted(_kernels_used(hls / "layers", interface, policy_kernels)):
        shutil.copyfile(_kernel_source(kernel), hls / "kernels" / kernel)
    _write(hls / "tb_data" / "input.dat", _dat(ins))
    _write(hls / "tb_data" / "expected.dat", _dat(outs))
    if stateful:
        _write(hls / "tb_data" / "reset.dat", "".join(f"{int(r)}\n" for r in resets))
    if early_exit:
        _write(hls / "tb_data" / "expected_ee.dat", _dat([[np.array([k]), np.asarray(v).reshape(-1)]
                                                          for k, v in zip(early_exit["exits"], early_exit["outputs"])]))
    _write(hls / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _state_resets(resets: list[bool] | None, vectors: int, stateful: bool) -> list[bool]:
    """Per vector, does the testbench reset the state before it (default: always)."""
    if resets is None:
        return [True] * vectors
    if not stateful:
        raise DmxError("HLS backend: state_resets given, but the model keeps no state")
    if len(resets) != vectors:
        raise DmxError(f"HLS backend: {len(resets)} state resets for {vectors} vectors")
    return [bool(r) for r in resets]


def _check_options(weight_format: str, interface: str, part: str, clock_ns: float, reuse_factor: int,
                   min_sparsity: float) -> None:
    try:  # format and min_sparsity: the storage policy's own checks
        hls_storage(weight_format, min_sparsity)
    except PolicyError as e:
        raise DmxError(f"HLS backend: {e}") from None
    if interface not in INTERFACES:
        raise DmxError(f"HLS backend: unknown interface {interface!r}; choose one of {', '.join(INTERFACES)}")
    if not isinstance(part, str) or not _PART.match(part):
        raise DmxError(f"HLS backend: {part!r} is not an FPGA part name (letters, digits, '-', '_', '.')")
    if isinstance(clock_ns, bool) or not isinstance(clock_ns, (int, float)) or not 0 < clock_ns < 1e6:
        raise DmxError(f"HLS backend: clock period {clock_ns!r} ns must be a positive number")
    if isinstance(reuse_factor, bool) or not isinstance(reuse_factor, (int, np.integer)) or reuse_factor < 1:
        raise DmxError(f"HLS backend: reuse factor {reuse_factor!r} must be an integer >= 1")


def _vectors(graph: Graph, names: list[str], samples, what: str) -> list[list[np.ndarray]]:
    """Each sample as one array per graph tensor in `names`, checked against its size and dtype."""
    if samples is None or len(samples) == 0:
        raise DmxError(f"HLS backend: no {what}s given; the testbench needs at least one vector")
    vectors = []
    for k, sample in enumerate(samples):
        if isinstance(sample, dict):
            missing = [n for n in names if n not in sample]
            if missing:
                raise DmxError(f"HLS backend: {what} {k} has no value for {missing[0]!r}")
            arrays = [sample[n] for n in names]
        elif isinstance(sample, np.ndarray):
            arrays = [sample]
        else:
            arrays = list(sample)
        if len(arrays) != len(names):
            raise DmxError(f"HLS backend: {what} {k} holds {len(arrays)} arrays, the graph has {len(names)}")
        one = []
        for name, a in zip(names, arrays):
            t = graph.tensors[name]
            a = np.asarray(a)
            if a.size != t.size:
                raise DmxError(f"HLS backend: {what} {k} for {name!r} has {a.size} values, "
                               f"shape {list(t.shape)} needs {t.size}")
            if t.dtype in ("int8", "int16"):
                info = np.iinfo(t.dtype)
                if a.dtype.kind not in "iu" or a.min() < info.min or a.max() > info.max:
                    raise DmxError(f"HLS backend: {what} {k} for {name!r} must be {t.dtype} values, got {a.dtype}")
            one.append(a.astype(t.dtype).reshape(-1))
        vectors.append(one)
    return vectors


def _dat(vectors: list[list[np.ndarray]]) -> str:
    """One vector a line; float32 with 9 significant digits, which strtof reads back exactly."""
    lines = []
    for arrays in vectors:
        flat = np.concatenate(arrays)
        fmt = "%.9g" if flat.dtype == np.float32 else "%d"
        lines.append(" ".join(fmt % v for v in flat.tolist()))
    return "\n".join(lines) + "\n"


def _early_exit_ctx(plan, entries: list, early_exit: dict | None) -> dict | None:
    """What top.cpp's dmx_top_ee needs: the policy, the input port, the one output size."""
    if not early_exit:
        return None
    if not entries or len(plan.outputs) != len(early_exit["thresholds"]) + 1:
        raise DmxError("HLS backend: an early-exit top needs the entry points exit0 ... final (array interface)")
    sizes = {p.size for p in plan.outputs}
    if len(sizes) != 1 or any(p.edge or p.dtype != "int8" for p in plan.outputs) or len(plan.inputs) != 1 \
            or plan.inputs[0].dtype != "int8":
        raise DmxError("HLS backend: an early-exit top needs one int8 input and int8 exit logits of one size")
    return {**early_exit, "input": plan.inputs[0], "size": sizes.pop(), "n": len(early_exit["thresholds"])}


def _kernels_used(layers_dir: Path, interface: str, extra: set[str] = frozenset()) -> set[str]:
    """Kernel headers the layer headers include (and `extra`), with the headers those include."""
    include = re.compile(r'#include "(?:kernels/)?(dmx_\w+\.h)"')
    wanted = ({"dmx_stream.h"} if interface == "stream" else set()) | set(extra)
    for path in layers_dir.glob("*.h"):
        wanted |= set(include.findall(path.read_text()))
    todo = list(wanted)
    while todo:
        for name in include.findall(_kernel_source(todo.pop()).read_text()):
            if name not in wanted:
                wanted.add(name)
                todo.append(name)
    return wanted


def _kernel_source(name: str) -> Path:
    """templates/hls/kernels/NAME, or the header shared with the C export (templates/common/dmx_int.h)."""
    own = TEMPLATES / "kernels" / name
    return own if own.exists() else TEMPLATES.parent / "common" / name


def _manifest(plan: Plan, weight_format: str, interface: str, part: str, clock_ns: float,
              reuse_factor: int, vectors: int) -> dict:
    layers = []
    for layer in plan.layers:
        w = layer.ctx.get("weights")
        entry = {"name": layer.op.name, "ident": layer.ident, "op": layer.op.kind, "format": None, "bytes": 0}
        if w is not None:
            entry.update(format=w["format"], bytes=w["nbytes"], nnz=w["nnz"], rows=w["rows"], cols=w["cols"],
                         dense_bytes=w["rows"] * w["cols"], sparsity=round(w["sparsity"], 6), reason=w["reason"])
        layers.append(entry)

    def port(p: Port) -> dict:
        return {"name": p.graph_name, "port": p.ident, "values": p.size, "graph_dtype": p.graph_dtype,
                "dtype": p.dtype, "host": p.edge["kind"] if p.edge else None}

    entries = {"entries": [{"name": e.name, "top": f"{TOP}_{e.name}", "inputs": [p.ident for p in e.inputs],
                            "outputs": [p.ident for p in e.outputs], "layers": [la.ident for la in e.layers]}
                           for e in plan.entries]} if plan.entries else {}
    return {**entries, "target": "hls", "top": TOP, "interface": interface, "weight_format": weight_format,
            "reuse_factor": int(reuse_factor), "part": part, "clock_ns": float(clock_ns), "vectors": vectors,
            "inputs": [port(p) for p in plan.inputs], "outputs": [port(p) for p in plan.outputs],
            "layers": layers, "weight_bytes": sum(entry["bytes"] for entry in layers)}


def _comment(text: str) -> str:
    """Text safe inside a C block comment or after a Tcl '#'."""
    return re.sub(r"[\x00-\x1f\x7f]", " ", str(text)).replace("*/", "* /")


def _c_string(text: str) -> str:
    """Body of a C string literal for `text` (ASCII-escaped)."""
    out = []
    for ch in str(text).encode("utf-8"):
        c = chr(ch)
        out.append(c if 32 <= ch < 127 and c not in '"\\?' else f"\\{ch:03o}")
    return "".join(out)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
    env.filters["comment"] = _comment
    env.filters["c_string"] = _c_string
    return env


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="\n")
