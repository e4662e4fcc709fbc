"""int8 accuracy of dmxgen against float and against torch.ao's post-training static quantization.

For each model of dmxgen/testing/torch_zoo.py: the relative logit error ||q - f|| / ||f|| over
a seeded input set, of dmxgen's int8 model (INT8 per-channel weights, dense, per-tensor
activations calibrated by the default MSE method or --activation-calibration; its fake-quantized outputs are the exported C's to the
bit, tests/torch/test_zoo.py) and of torch.ao.quantization's FX flow (prepare_fx / convert_fx
with the default qconfig mapping of the x86 and the qnnpack backend), both calibrated on the
same batch. Prints a markdown table; "n/a: reason" where a flow fails on a model.

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


def torch_ao(net, cal, x, backend: str) -> torch.Tensor:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    engine, torch.backends.quantized.engine = torch.backends.quantized.engine, backend
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepared = prepare_fx(copy.deepcopy(net).eval(), get_default_qconfig_mapping(backend), (cal[:1],))
            with torch.no_grad():
                prepared(cal)
                return convert_fx(prepared)(x)
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
    for b in BACKENDS:
        try:
            row[b] = rel_error(torch_ao(net, cal, x, b), f)
        except Exception as e:
            row[b] = _short(e)
    return row


def _cell(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def table(rows: list[dict]) -> str:
    c = any("c" in r for r in rows)
    lines = ["| model | dmxgen int8 | torch.ao x86 | torch.ao qnnpack | dmxgen <= best torch.ao |"
             + (" host C = fake-quant |" if c else ""), "|---|---|---|---|---|" + ("---|" if c else "")]
    for r in rows:
        ao = [r[b] for b in BACKENDS if isinstance(r[b], float)]
        if isinstance(r["dmxgen"], float) and ao:
            verdict = "yes" if r["dmxgen"] <= min(ao) else f"no ({r['dmxgen'] / min(ao):.2f}x)"
        else:
            verdict = "n/a"
        lines.append(f"| {r['model']} | {_cell(r['dmxgen'])} | {_cell(r['x86'])} | {_cell(r['qnnpack'])} | {verdict} |"
                     + (f" {r.get('c', 'n/a')} |" if c else ""))
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
