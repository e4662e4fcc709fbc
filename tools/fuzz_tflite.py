#!/usr/bin/env python3
"""Mutation fuzzer for dmxgen's TFLite frontend and everything behind it (issue 18).

Each case is a mutated copy of a seed model: raw byte flips, truncation, zeroed and
duplicated regions, or one field-aware change made through the TFLite schema's object API
(operator codes, shapes, tensor types, buffer indices, quantization scales, zero points and
dimensions, operator options, operator inputs and outputs, the subgraph's inputs and outputs).
Each case runs through `inspect`, `inspect --formats`, `export` (C), `export --target hls` and
`verify`, in this process through click's CliRunner (the golden interpreter runs in dmxgen's
isolated worker, so a LiteRT crash is a refusal, not the end of the fuzzer).

Every run is classified:
  refusal   exit 2, one line `dmxgen: error: ...`, nothing else printed, no output folder
  success   exit 0 (export: a complete folder with manifest.json)
  mismatch  verify exit 1: a model TFLite runs and dmxgen reads differently; investigate
  defect    anything else: a traceback, another exit code, a warning, several lines, partial
            output or hidden temporary folders left behind, a run over --run-timeout seconds
Defect files are saved in DEFECTS_DIR with a .txt that holds the command reproducing them.
Before each run the case is written to DEFECTS_DIR/in_progress.*: if dmxgen itself crashes the
process, the next start reports that case as a crash.

Examples:
  nice python tools/fuzz_tflite.py --out /tmp/fuzz --count 3000
  python tools/fuzz_tflite.py --out /tmp/fuzz --seconds 60 --seed 7 --commands inspect,verify
"""
from __future__ import annotations

import argparse
import random
import shutil
import signal
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import flatbuffers  # noqa: E402
from ai_edge_litert import schema_py_generated as S  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from dmxgen import goldens  # noqa: E402
from dmxgen.cli import main  # noqa: E402

SHARED = ROOT.parent / "shared" / "models"
DEFAULT_MODELS = ("mlperf_tiny/ad01_int8.tflite", "mlperf_tiny/kws_ref_model.tflite", "dcsr/sparse_s_90.tflite")
COMMANDS = {
    "inspect": lambda f, o: ["inspect", f],
    "formats": lambda f, o: ["inspect", "--formats", f],
    "export": lambda f, o: ["export", f, "-o", o / "c"],
    "hls": lambda f, o: ["export", f, "-o", o / "hls", "--target", "hls"],
    "verify": lambda f, o: ["verify", f, "--inputs", "2"],
}
CLASSES = ("refusal", "success", "mismatch", "defect")

INTS = [0, 1, 2, 3, -1, 100, 127, 128, -128, -129, 255, 256, 2**15, 2**31 - 1, -(2**31), 2**16 + 1]
FLOATS = [0.0, -0.5, float("nan"), float("inf"), float("-inf"), 1e-45, 1e-38, 1e-20, 1e20, 3.4e38, 1e-6, 2.0]
BIG_ZPS = [2**31 - 1, -(2**31), 2**62, -(2**63), 128, -129, 255, 256, 1, -1]


# -- mutations -------------------------------------------------------------------------------

def raw_flip(rng: random.Random, buf: bytes) -> bytes:
    b = bytearray(buf)
    for _ in range(rng.randint(1, 8)):
        b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def raw_truncate(rng: random.Random, buf: bytes) -> bytes:
    return buf[:rng.randrange(len(buf))]


def raw_zero(rng: random.Random, buf: bytes) -> bytes:
    start, n = rng.randrange(len(buf)), rng.choice([4, 16, 64, 512, 4096])
    return buf[:start] + bytes(min(n, len(buf) - start)) + buf[start + n:]


def raw_duplicate(rng: random.Random, buf: bytes) -> bytes:
    n = min(rng.choice([4, 16, 64, 512]), len(buf) - 1)  # a seed smaller than the run (a one-op model)
    src, dst = rng.randrange(len(buf) - n), rng.randrange(len(buf) - n)
    return buf[:dst] + buf[src:src + n] + buf[dst + n:]


def _code(m, op) -> int:
    oc = m.operatorCodes[op.opcodeIndex]
    return max(oc.builtinCode, oc.deprecatedBuiltinCode)


def f_opcode(rng, m, sg):
    oc = rng.choice(m.operatorCodes)
    names = [v for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")]
    value = rng.choice(names + [rng.randrange(-5, 300)])
    if rng.random() < 0.5:
        oc.builtinCode = value
    else:
        oc.deprecatedBuiltinCode = max(-128, min(127, value))
    return f"operator code -> {value}"


def f_opcode_index(rng, m, sg):
    op = rng.choice(sg.operators)
    op.opcodeIndex = rng.choice([rng.randrange(len(m.operatorCodes)), len(m.operatorCodes), 2**31 - 1])
    return f"opcode index -> {op.opcodeIndex}"


def f_shape(rng, m, sg):
    t = rng.choice(sg.tensors)
    shape = list(t.shape) if t.shape is not None else []
    what = rng.random()
    if what < 0.2 or not shape:
        shape.append(rng.choice([1, 2]))
    elif what < 0.35:
        shape.pop(rng.randrange(len(shape)))
    else:
        i = rng.randrange(len(shape))
        shape[i] = rng.choice([0, -1, 1, 2, shape[i] + 1, shape[i] - 1, shape[i] * 2, 2**31 - 1, 2**20])
    t.shape = shape
    return f"tensor {t.name!r} shape -> {shape}"


def f_type(rng, m, sg):
    t = rng.choice(sg.tensors)
    t.type = rng.choice([v for k, v in vars(S.TensorType).items() if not k.startswith("_")] + [99])
    return f"tensor {t.name!r} type -> {t.type}"


def f_buffer(rng, m, sg):
    t = rng.choice(sg.tensors)
    t.buffer = rng.choice([0, rng.randrange(len(m.buffers)), len(m.buffers), 2**31 - 1])
    return f"tensor {t.name!r} buffer -> {t.buffer}"


def f_buffer_data(rng, m, sg):
    full = [b for b in m.buffers if b.data is not None and len(b.data)]
    b = rng.choice(full)
    n = len(b.data)
    b.data = b.data[:rng.randrange(n)] if rng.random() < 0.5 else list(b.data) + [0] * rng.choice([1, 4, n])
    return f"buffer data resized from {n}"


def _quantized(sg):
    return [t for t in sg.tensors if t.quantization is not None and t.quantization.scale is not None]


def f_scale(rng, m, sg):
    t = rng.choice(_quantized(sg))
    q = t.quantization
    if rng.random() < 0.2:
        q.scale = list(q.scale) + [0.1] if rng.random() < 0.5 else list(q.scale)[:-1]
    else:
        q.scale = [rng.choice(FLOATS + [s * rng.choice([0.5, 2.0, 1e-3, 1e3]) for s in q.scale[:1]])
                   for _ in q.scale]
    return f"tensor {t.name!r} scales -> {list(q.scale)[:4]}"


def f_zero_point(rng, m, sg):
    t = rng.choice(_quantized(sg))
    q = t.quantization
    zps = list(q.zeroPoint) if q.zeroPoint is not None else [0]
    if rng.random() < 0.2:
        zps = zps + [0] if rng.random() < 0.5 else zps[:-1]
    else:
        zps[rng.randrange(len(zps))] = rng.choice(BIG_ZPS + [rng.randrange(-128, 128)])
    q.zeroPoint = zps
    return f"tensor {t.name!r} zero points -> {zps[:4]}"


def f_quant_dim(rng, m, sg):
    t = rng.choice(_quantized(sg))
    t.quantization.quantizedDimension = rng.choice([0, 1, 2, 3, 4, -1, 100])
    return f"tensor {t.name!r} quantized dimension -> {t.quantization.quantizedDimension}"


def f_options(rng, m, sg):
    ops = [op for op in sg.operators if op.builtinOptions is not None]
    op = rng.choice(ops)
    o = op.builtinOptions
    if rng.random() < 0.1:
        op.builtinOptionsType = rng.choice([0, rng.randrange(1, 120)])
        if op.builtinOptionsType == 0:
            op.builtinOptions = None
        return f"operator options type -> {op.builtinOptionsType}"
    fields = [k for k, v in vars(o).items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not fields:
        return "no option field"
    k = rng.choice(fields)
    v = rng.choice(FLOATS) if isinstance(getattr(o, k), float) else rng.choice(INTS)
    if isinstance(getattr(o, k), int) and "Factor" not in k and "stride" not in k and rng.random() < 0.5:
        v = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 100])  # enums: padding, activation, weights format
    setattr(o, k, v)
    return f"operator {type(o).__name__}.{k} -> {v}"


def f_op_io(rng, m, sg):
    op = rng.choice(sg.operators)
    lst = op.inputs if rng.random() < 0.7 else op.outputs
    lst = list(lst) if lst is not None else []
    what = rng.random()
    if what < 0.15 and lst:
        lst.pop(rng.randrange(len(lst)))
    elif what < 0.3:
        lst.append(rng.randrange(len(sg.tensors)))
    elif lst:
        lst[rng.randrange(len(lst))] = rng.choice([-1, rng.randrange(len(sg.tensors)), len(sg.tensors), 2**31 - 1])
    if rng.random() < 0.7:
        op.inputs = lst
    else:
        op.outputs = lst
    return f"operator io -> {lst}"


def f_graph_io(rng, m, sg):
    which = "inputs" if rng.random() < 0.5 else "outputs"
    lst = list(getattr(sg, which))
    what = rng.random()
    if what < 0.2:
        lst = []
    elif what < 0.5:
        lst.append(rng.randrange(len(sg.tensors)))  # a constant, an intermediate, or a duplicate
    elif what < 0.7 and lst:
        lst += lst
    elif lst:
        lst[rng.randrange(len(lst))] = rng.choice([-1, rng.randrange(len(sg.tensors)), len(sg.tensors)])
    setattr(sg, which, lst)
    return f"subgraph {which} -> {lst[:6]}"


RAW = {"flip": raw_flip, "truncate": raw_truncate, "zero": raw_zero, "duplicate": raw_duplicate}
FIELD = {"opcode": f_opcode, "opcode_index": f_opcode_index, "shape": f_shape, "type": f_type, "buffer": f_buffer,
         "buffer_data": f_buffer_data, "scale": f_scale, "zero_point": f_zero_point, "quant_dim": f_quant_dim,
         "options": f_options, "op_io": f_op_io, "graph_io": f_graph_io}


def mutate(rng: random.Random, seed_bytes: bytes) -> tuple[bytes, str]:
    """One mutated file and a description of the change; field mutations 2 times in 3."""
    if rng.random() < 1 / 3:
        name = rng.choice(sorted(RAW))
        return RAW[name](rng, seed_bytes), f"raw {name}"
    for _ in range(10):
        name = rng.choice(sorted(FIELD))
        m = S.ModelT.InitFromObj(S.Model.GetRootAs(seed_bytes, 0))
        try:
            what = FIELD[name](rng, m, m.subgraphs[0])
            b = flatbuffers.Builder(len(seed_bytes) + 1024)
            b.Finish(m.Pack(b), file_identifier=b"TFL3")
            return bytes(b.Output()), f"{name}: {what}"
        except Exception:  # noqa: BLE001
            continue  # the schema cannot write this value: draw another mutation
    return raw_flip(rng, seed_bytes), "raw flip"


# -- running and classifying -----------------------------------------------------------------

class RunTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise RunTimeout


def run_one(runner: CliRunner, args: list, out: Path, timeout: float) -> tuple[str, str]:
    """(class, reason) of one dmxgen run."""
    args = [str(a) for a in args]
    exporting = args[0] == "export"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            r = runner.invoke(main, args)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    text = r.stdout + r.stderr
    if isinstance(r.exception, RunTimeout):
        return "defect", f"no result within {timeout:g} s"
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        import traceback

        last = traceback.format_exception(r.exception)[-1].strip()
        return "defect", f"traceback: {last[:200]}"
    if caught:
        return "defect", f"warning: {caught[0].category.__name__}: {str(caught[0].message)[:150]}"
    if "Traceback" in text or "Warning" in text:
        return "defect", f"printed: {text.strip().splitlines()[-1][:200]}"
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
    if leftovers:
        return "defect", f"hidden temporary folders left: {leftovers}"
    if r.exit_code == 2:
        lines = r.stderr.strip().splitlines()
        if len(lines) != 1 or not lines[0].startswith("dmxgen: error: ") or r.stdout.strip():
            return "defect", f"refusal of {len(lines)} lines: {r.stderr.strip()[:200]!r}"
        if exporting and Path(args[3]).exists():
            return "defect", "refused, yet the output folder exists"
        return "refusal", lines[0][len("dmxgen: error: "):]
    if r.exit_code == 0:
        if exporting and not (Path(args[3]) / "manifest.json").is_file():
            return "defect", "exit 0 without a complete output folder"
        return "success", ""
    if r.exit_code == 1 and args[0] == "verify":
        return "mismatch", text.strip().splitlines()[-1] if text.strip() else ""
    return "defect", f"exit {r.exit_code}: {text.strip()[-200:]!r}"


def save_defect(defects: Path, n: int, data: bytes, what: str, args: list, cls_reason: str) -> None:
    name = f"defect_{n:05d}"
    (defects / f"{name}.tflite").write_bytes(data)
    cmd = " ".join(["dmxgen", "--debug"] + [str(a) for a in args]).replace("CASE", str(defects / f"{name}.tflite"))
    (defects / f"{name}.txt").write_text(f"mutation: {what}\nresult: {cls_reason}\nreproduce: {cmd}\n")


def fuzz(models: list[Path], defects: Path, count: int, seconds: float, seed: int, commands: list[str],
         run_timeout: float, quiet: bool = False) -> dict:
    """Run up to `count` cases within `seconds`; returns {"cases", "runs": Counter of (command, class),
    "defects": [reason, ...], "mismatches": [...]}."""
    defects.mkdir(parents=True, exist_ok=True)
    found = {"cases": 0, "runs": Counter(), "defects": [], "mismatches": []}
    _report_crash(defects, found)
    rng = random.Random(seed)
    seeds = [(p, p.read_bytes()) for p in models]
    runner = CliRunner()
    goldens.GOLDEN_TIMEOUT = run_timeout
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dmxgen-fuzz-") as tmp:
        try:
            _loop(rng, seeds, runner, Path(tmp), defects, found, count, seconds, start, commands, run_timeout, quiet)
        except KeyboardInterrupt:  # Ctrl-C: keep what was found (only a crash leaves a case in progress)
            found["interrupted"] = True
    for p in ("in_progress.tflite", "in_progress.txt"):
        (defects / p).unlink(missing_ok=True)
    found["seconds"] = round(time.monotonic() - start, 1)
    return found


def _loop(rng, seeds, runner, tmp: Path, defects: Path, found: dict, count: int, seconds: float, start: float,
          commands: list[str], run_timeout: float, quiet: bool) -> None:
    """Mutate, run every command, classify, until `count` cases or `seconds` have passed."""
    while found["cases"] < count and time.monotonic() - start < seconds:
        src, seed_bytes = rng.choice(seeds)
        data, what = mutate(rng, seed_bytes)
        case = tmp / "case.tflite"
        case.write_bytes(data)
        work = tmp / "out"
        for command in commands:
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            args = COMMANDS[command](case, work)
            (defects / "in_progress.tflite").write_bytes(data)
            (defects / "in_progress.txt").write_text(
                f"mutation of {src.name}: {what}\nreproduce: dmxgen --debug "
                + " ".join(str(a) for a in args).replace(str(case), str(defects / "in_progress.tflite")) + "\n")
            cls, reason = run_one(runner, args, work, run_timeout)
            found["runs"][(command, cls)] += 1
            if cls == "defect":
                n = len(found["defects"])
                shown = [str(a).replace(str(case), "CASE") for a in args]
                save_defect(defects, n, data, f"{src.name}: {what}", shown, f"{command}: {reason}")
                found["defects"].append(f"{command}: {reason} [{src.name}: {what}]")
                if not quiet:
                    print(f"DEFECT {n}: {command}: {reason} [{what}]", flush=True)
            elif cls == "mismatch":
                found["mismatches"].append(f"{src.name}: {what}")
        found["cases"] += 1


def _report_crash(defects: Path, found: dict) -> None:
    """A case left in progress by an earlier run killed that process: keep it as a crash defect."""
    txt = defects / "in_progress.txt"
    if txt.exists():
        n = len(list(defects.glob("crash_*.tflite")))
        (defects / "in_progress.tflite").rename(defects / f"crash_{n:05d}.tflite")
        txt.rename(defects / f"crash_{n:05d}.txt")
        found["defects"].append(f"process crash in an earlier run: see crash_{n:05d}.txt")


def summary(found: dict, commands: list[str]) -> str:
    rows = [["command"] + list(CLASSES)]
    for c in commands:
        rows.append([c] + [str(found["runs"][(c, k)]) for k in CLASSES])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"{found['cases']} mutated files in {found.get('seconds', 0)} s"
             + (" (interrupted)" if found.get("interrupted") else "")]
    lines += ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths)))
              for r in rows]
    lines += [f"defect: {d}" for d in found["defects"][:20]]
    lines += [f"mismatch: {d}" for d in found["mismatches"][:20]]
    return "\n".join(lines)


def main_cli(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="folder where defect files and their commands go")
    ap.add_argument("--models", nargs="*", type=Path,
                    help=f"seed .tflite models (default: {', '.join(DEFAULT_MODELS)} from ../shared/models)")
    ap.add_argument("--count", type=int, default=1000, help="most mutated files to try (default 1000)")
    ap.add_argument("--seconds", type=float, default=600, help="stop after this many seconds (default 600)")
    ap.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same files")
    ap.add_argument("--commands", default=",".join(COMMANDS),
                    help=f"comma-separated subset of {', '.join(COMMANDS)} (default: all)")
    ap.add_argument("--run-timeout", type=float, default=120,
                    help="seconds one dmxgen run may take before it counts as a hang (default 120)")
    a = ap.parse_args(argv)
    models = a.models or [SHARED / m for m in DEFAULT_MODELS]
    missing = [str(p) for p in models if not p.is_file()]
    if missing:
        ap.error(f"no such model: {', '.join(missing)}")
    commands = a.commands.split(",")
    unknown = [c for c in commands if c not in COMMANDS]
    if unknown:
        ap.error(f"unknown command {unknown[0]!r}; choose from {', '.join(COMMANDS)}")
    found = fuzz(models, a.out, a.count, a.seconds, a.seed, commands, a.run_timeout)
    print(summary(found, commands))
    return 1 if found["defects"] else 0


if __name__ == "__main__":
    sys.exit(main_cli())
