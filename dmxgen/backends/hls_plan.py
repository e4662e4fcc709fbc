"""The integer graph as the HLS top function sees it.

- Float edges: a float32 graph input read only by a QUANTIZE, and a float32
  graph output written by a DEQUANTIZE, stay on the host (the testbench does
  them, as an FPGA host driver would); the top function takes and returns integer codes.
- Activations are int8 or int16 (TFLite's 16x8): every port, buffer and FIFO has its
  tensor's type, and a layer runs only if its kind's HLS kernel takes that dtype.
- RESHAPE moves no data: its output is another name for its input.
- Every other op becomes one layer (a header with its ROM arrays and a `run`).
- Wiring: local buffers for the array interface, one FIFO per consumer for the
  streaming (DATAFLOW) interface.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from ..codecs import policy
from ..errors import DmxError
from ..graph import Graph, Op
from ..ops.gather import index_bound
from .hls_ops import HLS_BUILDERS, OpContext

INTERFACES = ("array", "stream")
ACTIVATION_DTYPES = ("int8", "int16")  # what ports, buffers and FIFOs carry (int16: TFLite's 16x8)
INDEX_DTYPES = ("int32", "int64")  # indices an arg kind writes (spec.writes_indices), gather reads (reads_indices)


@dataclass
class Port:
    """One argument of the top function and the graph input or output it stands for."""

    ident: str
    tensor: str
    graph_name: str
    graph_dtype: str
    size: int
    edge: dict | None = None  # host-side quantize/dequantize: {"kind", "scale", "zero_point"}
    dtype: str = "int8"  # the codes the port carries (the integer tensor's dtype)

    @property
    def ctype(self) -> str:
        return f"{self.dtype}_t"


@dataclass
class Layer:
    ident: str
    op: Op
    inputs: list[str]  # activation tensors read by run(), in argument order
    output: str
    ctx: dict
    in_sizes: list[int] = field(default_factory=list)
    out_size: int = 0
    shapes: str = ""  # "[1, 49, 10, 1] -> [1, 25, 5, 64]", for comments
    in_dtype: str = "int8"  # the activation dtypes run() reads and writes: the kernel's data_T and res_T
    out_dtype: str = "int8"


@dataclass
class EntryPoint:
    """A declared entry point of the graph (graph/entries.py): one top function dmx_top_<name>."""

    name: str
    inputs: list[Port]
    outputs: list[Port]
    layers: list[Layer]


@dataclass
class Plan:
    inputs: list[Port]
    outputs: list[Port]
    layers: list[Layer]
    sizes: dict[str, int]
    entries: list[EntryPoint] = field(default_factory=list)  # empty: the one top function, dmx_top
    ctypes: dict[str, str] = field(default_factory=dict)  # tensor -> the C type of its codes (int8_t, int16_t)


def _fail(graph: Graph, msg: str) -> DmxError:
    where = f"{graph.source}: " if graph.source else ""
    return DmxError(f"{where}HLS backend: {msg}")


# C++ keywords and alternative tokens a layer name could collide with (a namespace is named after it).
_KEYWORDS = frozenset("""alignas alignof and and_eq asm auto bitand bitor bool break case catch char char16_t
char32_t class compl const constexpr const_cast continue decltype default delete do double dynamic_cast else enum
explicit export extern false float for friend goto if inline int long mutable namespace new noexcept not not_eq
nullptr operator or or_eq private protected public register reinterpret_cast return short signed sizeof static
static_assert static_cast struct switch template this thread_local throw true try typedef typeid typename union
unsigned using virtual void volatile wchar_t while xor xor_eq dmx hls std""".split())


def c_ident(name: str, taken: set[str]) -> str:
    """A C++ identifier for an op name, unique within `taken` ignoring case (it also names a header file)."""
    base = re.sub(r"_+", "_", re.sub(r"[^0-9A-Za-z_]", "_", name)).strip("_") or "layer"
    if base[0].isdigit() or base in _KEYWORDS:
        base = "l_" + base
    ident, k = base, 1
    while ident.lower() in taken:
        ident, k = f"{base}_{k}", k + 1
    taken.add(ident.lower())
    return ident


def _host_op(graph: Graph, name: str, is_input: bool) -> Op | None:
    """The QUANTIZE reading a float32 graph input, or the DEQUANTIZE writing a float32 output; None if
    the tensor is integer codes (int8, int16)."""
    t = graph.tensors[name]
    where = "input" if is_input else "output"
    if t.dtype in ACTIVATION_DTYPES or (t.dtype in INDEX_DTYPES and (not is_input or index_bound(graph, name))):
        return None  # indices (arg_max's outputs, gather's inputs): build_plan checks
    if t.dtype != "float32":
        raise _fail(graph, f"{where} {name!r} is {t.dtype}; the HLS top takes and returns int8 or int16 "
                           "(float32 only through a QUANTIZE / DEQUANTIZE the host runs)")
    if is_input:
        users = graph.consumers(name)
        if len(users) == 1 and users[0].kind == "quantize" and graph.tensors[users[0].outputs[0]].dtype \
                in ACTIVATION_DTYPES:  # float32 -> int8 / int16
            return users[0]
        raise _fail(graph, f"float32 input {name!r} must feed exactly one QUANTIZE (the host quantizes it); "
                           f"it feeds {', '.join(repr(u.name) for u in users) or 'nothing'}")
    d = graph.producer(name)
    if d is not None and d.kind == "dequantize" and graph.tensors[d.inputs[0]].dtype in ACTIVATION_DTYPES:
        return d
    raise _fail(graph, f"float32 output {name!r} must come from a DEQUANTIZE of int8 or int16 "
                       "(the host dequantizes it)")


def _edges(graph: Graph) -> tuple[list[Port], list[Port], set[str]]:
    """Top ports and the names of the ops the host does (float QUANTIZE in, DEQUANTIZE out)."""
    host_ops: set[str] = set()
    ports: tuple[list[Port], list[Port]] = ([], [])
    for is_input, names, prefix in ((True, graph.inputs, "in"), (False, graph.outputs, "out")):
        for k, name in enumerate(names):
            t = graph.tensors[name]
            port = Port(f"{prefix}{k}", name, name, t.dtype, t.size)
            op = _host_op(graph, name, is_input)
            if op is not None:
                port.tensor = op.outputs[0] if is_input else op.inputs[0]
                port.edge = {"kind": op.kind, "scale": float(op.attrs["scale"]),
                             "zero_point": int(op.attrs["zero_point"])}
                host_ops.add(op.name)
            port.dtype = graph.tensors[port.tensor].dtype
            ports[0 if is_input else 1].append(port)
    return ports[0], ports[1], host_ops


def hls_storage(weight_format: str, min_sparsity: float) -> policy.StoragePolicy:
    """The HLS target's storage policy: policy.HLS (int8 values, INT4 layers unpacked) with the format and
    minimum sparsity asked for; PolicyError names a bad one."""
    return replace(policy.HLS, fmt=weight_format, min_sparsity=min_sparsity)


def build_plan(graph: Graph, weight_format: str, reuse_factor: int,
               min_sparsity: float = policy.HLS.min_sparsity) -> Plan:
    """Edges, aliases and one Layer per remaining op, in graph order.

    Weight formats come from the one storage policy (codecs/policy.py) with the
    HLS target's storage (hls_storage): int8 values, INT4 layers included.
    """
    inputs, outputs, host_ops = _edges(graph)
    try:
        storage = policy.assign(graph, hls_storage(weight_format, min_sparsity))
    except policy.PolicyError as e:
        raise _fail(graph, str(e)) from None
    alias: dict[str, str] = {}

    def canon(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    layers: list[Layer] = []
    taken = {"dmx_top"}
    for op in graph.ops:
        if op.name in host_ops:
            continue
        registered = HLS_BUILDERS.entries.get(op.kind)
        if registered is not None and registered.alias:
            alias[op.outputs[0]] = op.inputs[0]
            continue
        indices = INDEX_DTYPES if getattr(op.spec, "writes_indices", False) else ()
        read = INDEX_DTYPES if getattr(op.spec, "reads_indices", False) else ()  # gather's second input
        for name in [n for n in op.inputs if n and not graph.tensors[n].is_const] + op.outputs[:1]:
            allowed = (indices if name == op.outputs[0] else ()) + (read if name in op.inputs[1:2] else ())
            if graph.tensors[name].dtype not in ACTIVATION_DTYPES + allowed:
                raise _fail(graph, f"layer {op.name!r} ({op.kind}) works on the {graph.tensors[name].dtype} tensor "
                                   f"{name!r}; inside the top function every activation must be int8 or int16")
        try:
            builder = HLS_BUILDERS.lookup(op.kind, f"layer {op.name!r}")
        except DmxError as e:
            raise _fail(graph, str(e)) from None
        dtype = op.spec.activation_dtype(graph, op)
        if dtype not in builder.dtypes:
            raise _fail(graph, f"layer {op.name!r} ({op.kind}) computes in {dtype}; its HLS kernel runs "
                               f"{', '.join(builder.dtypes)} only")
        ctx = builder.fn(OpContext(graph, op, storage.get(op.name), reuse_factor))
        # run() takes the inputs the spec says are activations; constant ones are ROMs of the layer
        acts = [n for n in (op.inputs[k] for k in op.spec.activation_inputs(op)) if n and not graph.tensors[n].is_const]
        shapes = ", ".join(str(list(graph.tensors[n].shape)) for n in op.inputs if n and not graph.tensors[n].is_const)
        out = graph.tensors[op.outputs[0]]
        layers.append(Layer(c_ident(op.name, taken), op, [canon(n) for n in acts], op.outputs[0], ctx,
                            [graph.tensors[n].size for n in acts], out.size, f"{shapes} -> {list(out.shape)}",
                            graph.tensors[acts[0]].dtype if acts else out.dtype, out.dtype))
    for port in inputs + outputs:
        port.tensor = canon(port.tensor)
    _check_ports(graph, inputs, outputs)
    sizes = {name: t.size for name, t in graph.tensors.items()}
    ctypes = {name: f"{t.dtype}_t" for name, t in graph.tensors.items()
              if t.dtype in ACTIVATION_DTYPES + INDEX_DTYPES}
    return Plan(inputs, outputs, layers, sizes, _entry_points(graph, inputs, outputs, layers), ctypes)


def _entry_points(graph: Graph, inputs: list[Port], outputs: list[Port], layers: list[Layer]) -> list[EntryPoint]:
    """The declared entry points with their ports and layers (host edges and aliases have no layer)."""
    if not graph.has_entry_points:
        return []
    by_name = {p.graph_name: p for p in inputs + outputs}
    layer_of = {layer.op.name: layer for layer in layers}
    points = []
    for name, indices in graph.entry_ops().items():
        e = graph.entries[name]
        mine = [layer_of[graph.ops[i].name] for i in indices if graph.ops[i].name in layer_of]
        points.append(EntryPoint(name, [by_name[t] for t in e.inputs], [by_name[t] for t in e.outputs], mine))
    return points


def _check_ports(graph: Graph, inputs: list[Port], outputs: list[Port]) -> None:
    seen: dict[str, str] = {p.tensor: p.graph_name for p in inputs}
    for p in outputs:
        if p.tensor in seen:
            raise _fail(graph, f"output {p.graph_name!r} carries the same values as {seen[p.tensor]!r}; "
                               "the top function needs at least one layer between inputs and each output")
        seen[p.tensor] = p.graph_name


def array_wiring(plan: Plan) -> dict:
    """Buffer name per tensor: top ports for inputs and outputs, local arrays for the rest."""
    names = {p.tensor: p.ident for p in plan.inputs + plan.outputs}
    buffers = []
    for layer in plan.layers:
        if layer.output not in names:
            names[layer.output] = f"t{len(buffers)}"
            buffers.append({"name": names[layer.output], "size": layer.out_size, "tensor": layer.output,
                            "ctype": f"{layer.out_dtype}_t"})
    calls = [{"layer": layer, "args": [names[n] for n in layer.inputs] + [names[layer.output]]}
             for layer in plan.layers]
    entries = []
    for e in plan.entries:  # the same buffers, shared by every entry's top function
        mine = {id(layer) for layer in e.layers}
        entries.append({"name": e.name, "inputs": e.inputs, "outputs": e.outputs,
                        "calls": [c for c in calls if id(c["layer"]) in mine]})
    return {"buffers": buffers, "calls": calls, "entries": entries}


def stream_wiring(plan: Plan) -> dict:
    """One FIFO per (consumer, argument); a producer writes its whole tensor to each of them.

    A top input read by one layer is that layer's FIFO; otherwise a split process
    copies it. FIFOs of a producer with several readers are as deep as the tensor,
    so the producer never blocks on a reader that waits for another branch.
    """
    readers: dict[str, list[tuple[int, int]]] = {}
    for i, layer in enumerate(plan.layers):
        for k, name in enumerate(layer.inputs):
            readers.setdefault(name, []).append((i, k))
    out_port = {p.tensor: p.ident for p in plan.outputs}
    fifo_of: dict[tuple[int, int], str] = {}
    fifos: list[dict] = []

    def writes(tensor: str) -> list[str]:
        targets = readers.get(tensor, [])
        deep = len(targets) + (tensor in out_port) > 1
        names = []
        for i, k in targets:
            name = f"s{len(fifos)}"
            fifos.append({"name": name, "depth": plan.sizes[tensor] if deep else 0, "ctype": plan.ctypes[tensor]})
            fifo_of[(i, k)] = name
            names.append(name)
        return names + ([out_port[tensor]] if tensor in out_port else [])

    processes = []
    for port in plan.inputs:
        targets = readers.get(port.tensor, [])
        if len(targets) == 1:
            fifo_of[targets[0]] = port.ident
        else:
            processes.append({"name": f"split_{port.ident}", "layer": None, "ins": [port.ident],
                              "in_sizes": [port.size], "in_ctypes": [port.ctype], "outs": writes(port.tensor),
                              "out_size": port.size, "out_ctype": port.ctype})
    for i, layer in enumerate(plan.layers):
        processes.append({"name": f"p_{layer.ident}", "layer": layer, "ins": [], "in_sizes": layer.in_sizes,
                          "in_ctypes": [plan.ctypes[n] for n in layer.inputs], "outs": writes(layer.output),
                          "out_size": layer.out_size, "out_ctype": plan.ctypes[layer.output]})
    for proc in processes:
        if proc["layer"] is not None:
            i = plan.layers.index(proc["layer"])
            proc["ins"] = [fifo_of[(i, k)] for k in range(len(proc["layer"].inputs))]
    return {"fifos": fifos, "processes": processes}
