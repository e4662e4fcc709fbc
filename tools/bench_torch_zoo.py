"""int8 accuracy of dmxgen against float and against torch.ao's post-training static quantization.

For each model of dmxgen/testing/torch_zoo.py: the relative logit error ||q - f|| / ||f|| over
a seeded input set, of dmxgen's int8 model (INT8 per-channel weights, dense, per-tensor
activations calibrated by the default MSE method or --activation-calibration, bias correction on;
its fake-quantized outputs are the exported C's to the bit, tests/torch/test_zoo.py) and of
torch.ao.quantization's FX flow (prepare_fx / convert_fx with the default qconfig mapping of the
x86 and the qnnpack backend), all calibrated on the same batch. torch.ao's FX flow keeps some
layers in float (nn.LSTM, nn.GRU, nn.TransformerEncoderLayer: it has no static int8 module for
them in its default mapping); the table names them, and measures torch.ao once more on the same
function written in layers it does quantize (the recurrent layers unrolled into Linear, sigmoid,
tanh, mul and add per step; the encoder layer as dmxgen's own decomposition into Linear,
LayerNorm, matmul and softmax, compress/transformer.py), equal to the original in float to 1e-5.
The verdict compares dmxgen with torch.ao's int8 models, everything quantized; the float-layer
figures stay in their columns. Prints a markdown table; "n/a: reason" where a flow fails.

    nice .venv/bin/python tools/bench_torch_zoo.py [--calibration 64] [--inputs 64] [--c]
        [--activation-calibration MINMAX|MSE|PERCENTILE{p}] [MODEL ...]

With --c each dmxgen model is also exported (dense), built on the host and run on every
evaluation input, and a column says whether the C's output codes are the fake-quantized model's.
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dmxgen.testing.torch_zoo import ZOO, inputs  # noqa: E402

BACKENDS = ("x86", "qnnpack")


def rel_error(q: torch.Tensor, f: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(q.double() - f.double()) / torch.linalg.vector_norm(f.double()))


def dmxgen_int8(net, cal, x, method: str | None = None):
    """(the dequantized int8 outputs on x, the calibrated dmxgen.Model); `method` overrides the default
    activation_calibration on every layer."""
    import dmxgen

    config = {"re:.*": {"activation_calibration": method}} if method else None
    m = dmxgen.Model(copy.deepcopy(net)).transform(config)  # INT8(PER_CHANNEL) weights, INT8 activations
    with m.calibrating():
        m(cal)
    with torch.no_grad():
        return m.eval()(x), m


def c_matches(m, x, work: Path) -> str:
    """Export the model (dense), build its C on the host and run x: "yes" when every output code
    is the fake-quantized model's."""
    import subprocess

    import numpy as np

    from dmxgen.api import save
    from dmxgen.backends import host
    from dmxgen.backends.c import manifest_io

    work.mkdir(parents=True, exist_ok=True)
    out = work / "out"
    save(m, work / "model.pt2", x)
    r = subprocess.run([sys.executable, "-m", "dmxgen.cli", "export", str(work / "model.pt2"), "-o", str(out),
                        "--format", "dense", "--vectors", "1"], capture_output=True, text=True)
    if r.returncode != 0:
        return _short(RuntimeError(r.stderr))
    manifest = host.read_manifest(out)
    exe = host.build(out, work, sanitize=False, hooks=False, opt="-O1")
    codes = m.quantize_input(x)
    run = host.run(exe, [[c[None]] for c in codes], manifest_io(manifest, "input"),
                   manifest_io(manifest, "output"), work, dump=False)
    got = np.stack([np.asarray(v[0], dtype=np.int64) for v in run.outputs])
    want = m.output_codes(x).reshape(got.shape)
    return "yes" if np.array_equal(got, want) else f"no: {int((got != want).sum())} codes differ"


class UnrolledRNN(nn.Module):
    """A one-layer, batch_first, unidirectional nn.LSTM or nn.GRU from a zero state, written step by
    step in Linear, sigmoid, tanh, mul and add (what torch.ao quantizes): `steps` is the sequence
    length, fixed at trace time. Returns (outputs [N, T, H], (h_n, c_n) or h_n) like the module."""

    def __init__(self, rnn: nn.Module, steps: int):
        super().__init__()
        if rnn.num_layers != 1 or rnn.bidirectional or not rnn.batch_first:
            raise ValueError("only one-layer, unidirectional, batch_first recurrent layers are unrolled here")
        self.lstm, self.steps = isinstance(rnn, nn.LSTM), steps
        self.ih, self.hh = nn.Linear(rnn.input_size, rnn.weight_ih_l0.shape[0]), nn.Linear(rnn.hidden_size,
                                                                                          rnn.weight_hh_l0.shape[0])
        self.zero = nn.Linear(rnn.input_size, rnn.hidden_size)  # h_0 = c_0 = 0 from x, exact on any grid
        with torch.no_grad():
            for lin, kind in ((self.ih, "ih"), (self.hh, "hh")):
                lin.weight.copy_(getattr(rnn, f"weight_{kind}_l0"))
                lin.bias.copy_(getattr(rnn, f"bias_{kind}_l0"))
            self.zero.weight.zero_()
            self.zero.bias.zero_()

    def forward(self, x):
        h = c = self.zero(x[:, 0])
        outs = []
        for t in range(self.steps):
            gi, gh = self.ih(x[:, t]), self.hh(h)
            if self.lstm:
                i, f, g, o = (gi + gh).chunk(4, 1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            else:
                (ir, iz, i_n), (hr, hz, h_n) = gi.chunk(3, 1), gh.chunk(3, 1)
                r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
                n = torch.tanh(i_n + r * h_n)
                h = n + z * (h - n)
            outs.append(h)
        y = torch.stack(outs, 1)
        return (y, (h.unsqueeze(0), c.unsqueeze(0))) if self.lstm else (y, h.unsqueeze(0))


def float_layers(converted: nn.Module) -> list[str]:
    """What torch.ao's converted model still computes in float: plain torch.nn modules with weights,
    and float parameters read by float ops (a learned per-channel `alpha * x + beta`)."""
    found = set()
    for name, m in converted.named_modules():
        if name and type(m) is not nn.Module and type(m).__module__.startswith("torch.nn.modules") \
                and any(True for _ in m.parameters()):
            found.add(type(m).__name__)
    params = dict(converted.named_parameters())
    for node in converted.graph.nodes:
        if node.op != "get_attr" or node.target.endswith(("scale", "zero_point")) or "_scale_" in node.target:
            continue
        value = params.get(node.target)
        if value is not None and value.is_floating_point() and value.numel() > 1:
            ops = sorted({getattr(u.target, "__name__", str(u.target)) for u in node.users} - QUANTIZING)
            if ops:  # read by a float op, not quantized on the way in
                found.add(f"parameters in {'/'.join(ops)}")
    return sorted(found)


QUANTIZING = {"quantize_per_tensor", "quantize_per_channel"}


def quantizable(net: nn.Module, x: torch.Tensor) -> nn.Module | None:
    """The same function written in layers torch.ao quantizes, or None when the net has none of the
    layers it keeps in float; checked equal to the net in float."""
    from dmxgen.compress.build import plain_layers

    net = copy.deepcopy(net)
    kinds = (nn.TransformerEncoderLayer, nn.TransformerEncoder, nn.MultiheadAttention)
    changed = any(isinstance(m, kinds) for m in net.modules())
    if changed:
        net = plain_layers(net)  # dmxgen's own decomposition (compress/transformer.py, attention.py)
    steps = {}
    for name, m in list(net.named_modules()):
        if isinstance(m, (nn.LSTM, nn.GRU)):
            m.register_forward_hook(lambda mod, args, out, name=name: steps.__setitem__(name, args[0].shape[1]))
    with torch.no_grad():
        want = net(x)
    for name, length in steps.items():
        parent, _, attr = name.rpartition(".")
        owner = net.get_submodule(parent) if parent else net
        setattr(owner, attr, UnrolledRNN(getattr(owner, attr), length))
        changed = True
    if not changed:
        return None
    with torch.no_grad():
        got = net(x)
    if not torch.allclose(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max())):
        raise RuntimeError("the torch.ao-quantizable rewrite differs from the net in float")
    return net.eval()


def torch_ao(net, cal, x, backend: str, report: list | None = None) -> torch.Tensor:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    engine, torch.backends.quantized.engine = torch.backends.quantized.engine, backend
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepared = prepare_fx(copy.deepcopy(net).eval(), get_default_qconfig_mapping(backend), (cal[:1],))
            with torch.no_grad():
                prepared(cal)
                converted = convert_fx(prepared)
                if report is not None:
                    report.extend(float_layers(converted))
                return converted(x)
    finally:
        torch.backends.quantized.engine = engine


def _short(e: Exception) -> str:
    msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return f"n/a: {type(e).__name__}: {msg[:90]}".replace("|", "/")


def bench(name: str, n_cal: int, n_eval: int, c_dir: Path | None = None, method: str | None = None) -> dict:
    build, _ = ZOO[name]
    net = build()
    cal, x = inputs(name, n_cal, seed=0), inputs(name, n_eval, seed=2)
    with torch.no_grad():
        f = net(x)
    row = {"model": name}
    try:
        q, m = dmxgen_int8(net, cal, x, method)
        row["dmxgen"] = rel_error(q, f)
        if c_dir is not None:
            row["c"] = c_matches(m, x, c_dir / name)
    except Exception as e:  # a model dmxgen refuses is reported, not fatal
        row["dmxgen"] = _short(e)
    kept: list[str] = []
    for b in BACKENDS:
        try:
            row[b] = rel_error(torch_ao(net, cal, x, b, kept), f)
        except Exception as e:
            row[b] = _short(e)
    row["float"] = ", ".join(sorted(set(kept))) or "-"
    try:
        rewritten = quantizable(net, x) if kept else None
    except Exception as e:
        rewritten, row["int8"] = None, _short(e)
    if rewritten is not None:
        results = []
        for b in BACKENDS:
            try:
                results.append(rel_error(torch_ao(rewritten, cal, x, b), f))
            except Exception:
                pass
        row["int8"] = min(results) if results else "n/a: torch.ao fails on the rewrite"
    elif "int8" not in row:  # everything quantized, or no rewrite of what is not: torch.ao's own figure
        ao = [row[b] for b in BACKENDS if isinstance(row[b], float)]
        row["int8"] = min(ao) if ao else "n/a"
    return row


def _cell(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def table(rows: list[dict]) -> str:
    c = any("c" in r for r in rows)
    lines = ["| model | dmxgen int8 | torch.ao x86 | torch.ao qnnpack | torch.ao keeps in float | torch.ao int8, "
             "all layers | dmxgen <= torch.ao int8 |" + (" host C = fake-quant |" if c else ""),
             "|---|---|---|---|---|---|---|" + ("---|" if c else "")]
    for r in rows:
        ao = r.get("int8")
        if isinstance(r["dmxgen"], float) and isinstance(ao, float):
            verdict = "yes" if r["dmxgen"] <= ao else f"no ({r['dmxgen'] / ao:.2f}x)"
        else:
            verdict = "n/a"
        lines.append(f"| {r['model']} | {_cell(r['dmxgen'])} | {_cell(r['x86'])} | {_cell(r['qnnpack'])} | "
                     f"{r.get('float', '-')} | {_cell(ao)} | {verdict} |" + (f" {r.get('c', 'n/a')} |" if c else ""))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help=f"default: all of {', '.join(ZOO)}")
    ap.add_argument("--calibration", type=int, default=64, help="calibration inputs (seed 0)")
    ap.add_argument("--inputs", type=int, default=64, help="evaluation inputs (seed 2)")
    ap.add_argument("--c", action="store_true", help="also export each dmxgen model, run its C on the host on "
                    "every evaluation input and check the codes equal the fake-quantized model's")
    ap.add_argument("--activation-calibration", metavar="METHOD", help="dmxgen's activation_calibration on every "
                    "layer (MINMAX, MSE, PERCENTILE{99.99}); default: the config default, MSE")
    args = ap.parse_args(argv)
    unknown = [m for m in args.models if m not in ZOO]
    if unknown:
        ap.error(f"unknown model {unknown[0]!r}; known: {', '.join(ZOO)}")
    torch.set_num_threads(1)
    t = time.time()
    with tempfile.TemporaryDirectory(prefix="dmx-zoo-") as tmp:
        rows = [bench(n, args.calibration, args.inputs, Path(tmp) if args.c else None, args.activation_calibration)
                for n in (args.models or ZOO)]
    print(table(rows))
    print(f"\nrelative logit error ||q - f|| / ||f|| over {args.inputs} seeded inputs, {args.calibration} "
          f"calibration inputs (dmxgen/testing/torch_zoo.py inputs()); untrained nets with random BatchNorm "
          f"statistics; {time.time() - t:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
