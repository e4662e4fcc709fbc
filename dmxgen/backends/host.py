"""Build an exported folder with the host gcc and check it against the reference, to the bit.

`dmxgen verify OUT` lands here. The folder is compiled once, with sanitizers,
together with a small harness (templates/c/host_main.c.j2) in a temporary
build directory; one process runs every input and dumps each layer's output
through the DMX_LAYER_OUTPUT hook, so a mismatch names the first layer that
differs. Expected values come from the reference run on the source model
recorded in manifest.json when it is still there (same sha256), else from
the test vectors stored in the folder at export time.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DmxError
from ..verify import diff
from . import c_render, c_vectors

CC = os.environ.get("DMX_HOST_CC", "gcc")
WARNINGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-ffp-contract=off"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
RUN_ENV = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0", "UBSAN_OPTIONS": "print_stacktrace=1"}


class HostBuildError(DmxError):
    """The generated C did not compile or did not run cleanly; `.log` holds the tool output,
    also saved to a file named in the message (the build directory itself is removed)."""

    def __init__(self, message: str, log: str):
        with tempfile.NamedTemporaryFile("w", prefix="dmxgen-host-", suffix=".log", delete=False) as f:
            f.write(log)
        super().__init__(f"{message} (full output: {f.name})")
        self.log = log


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise DmxError(f"{folder}: not an exported folder (no manifest.json); run `dmxgen export` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DmxError(f"{path}: not valid JSON ({e})") from None


def _first_error(log: str) -> str:
    for line in log.splitlines():
        if "error" in line.lower() or "ERROR" in line:
            return line.strip()
    return log.strip().splitlines()[0] if log.strip() else "no output"


def build(folder: Path, workdir: Path, *, sanitize: bool = True, hooks: bool = True, opt: str = "-O2",
          extra: tuple[str, ...] = ()) -> Path:
    """Compile folder/*.c with the harness into workdir/prog; raise HostBuildError on failure."""
    folder, workdir = Path(folder).resolve(), Path(workdir)
    (workdir / "host_main.c").write_text(c_render.render("host_main.c.j2"))
    cmd = [CC, *WARNINGS, opt, *(SANITIZE if sanitize else []), *extra, "-I", str(folder)]
    if hooks:
        (workdir / "host_hooks.h").write_text(c_render.render("host_hooks.h.j2"))
        cmd += ["-include", str(workdir / "host_hooks.h")]
    sources = sorted(str(p) for p in folder.glob("*.c")) + [str(workdir / "host_main.c")]
    exe = workdir / "prog"
    r = subprocess.run(cmd + sources + ["-o", str(exe)], capture_output=True, text=True)
    if r.returncode != 0:
        raise HostBuildError(f"{folder}: host build failed: {_first_error(r.stderr)}", r.stderr)
    return exe


@dataclass
class HostRun:
    outputs: np.ndarray  # [n, output size]
    layers: list[dict[int, bytes]]  # per input: layer index -> output bytes


def run(exe: Path, inputs: np.ndarray, in_dtype: str, out_dtype: str, out_size: int, workdir: Path,
        dump: bool = True, label: str = "") -> HostRun:
    """Run every input through the harness in one process; `label` names the folder in errors."""
    workdir = Path(workdir)
    inputs_path, outputs_path, layers_path = workdir / "in.bin", workdir / "out.bin", workdir / "layers.bin"
    np.ascontiguousarray(inputs, dtype=in_dtype).tofile(inputs_path)
    cmd = [str(exe), str(inputs_path), str(outputs_path)] + ([str(layers_path)] if dump else [])
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **RUN_ENV}, timeout=600)
    if r.returncode != 0:
        raise HostBuildError(f"{label or exe}: generated code failed at run time "
                             f"(exit {r.returncode}): {_first_error(r.stderr)}", r.stderr)
    n = len(inputs)
    outputs = np.fromfile(outputs_path, dtype=out_dtype).reshape(n, out_size)
    return HostRun(outputs, _read_dumps(layers_path, n) if dump else [])


def _read_dumps(path: Path, n: int) -> list[dict[int, bytes]]:
    raw = path.read_bytes()
    per_input: list[dict[int, bytes]] = []
    pos, current = 0, None
    while pos < len(raw):
        index, size = (int(v) for v in np.frombuffer(raw, dtype=np.int32, count=2, offset=pos))
        pos += 8
        if index == 0 or current is None:
            current = {}
            per_input.append(current)
        current[index] = raw[pos:pos + size]
        pos += size
    return per_input[:n]


def time_inference(exe: Path, one_input: np.ndarray, in_dtype: str, repeat: int, workdir: Path) -> float:
    """Seconds per dmx_model_run on the host (harness built without hooks or sanitizers)."""
    path = Path(workdir) / "time_in.bin"
    np.ascontiguousarray(one_input, dtype=in_dtype).tofile(path)
    r = subprocess.run([str(exe), "--time", str(repeat), str(path)], capture_output=True, text=True, check=True)
    return float(r.stdout.strip())


# -- verify ---------------------------------------------------------------------------

@dataclass
class Expected:
    inputs: np.ndarray
    outputs: np.ndarray
    layers: list[dict[int, np.ndarray]] | None  # per input, from the lowered graph's reference
    layer_ops: list[tuple[str, str]]  # (name, kind) per layer
    source: str  # "model" or "stored"


def _from_model(folder: Path, m: dict, n_inputs: int, seed: int, input_files) -> Expected | None:
    from ..frontends import load
    from ..passes import lower
    from .c import model_key, sha256

    if not m["source"]["path"]:
        return None
    src = Path(m["source"]["path"])
    if not src.is_file() or sha256(src) != m["source"]["sha256"]:
        return None
    graph = load(src, semantics=m["semantics"]) if src.suffix == ".tflite" else load(src)
    lowered = lower(graph)
    if len(lowered.ops) != len(m["layers"]):
        return None
    v = c_vectors.compute(graph, lowered, n_inputs, seed, input_files, key=model_key(src, m["semantics"]))
    return Expected(np.stack(v.inputs), np.stack([o.reshape(-1) for o in v.outputs]), v.layers,
                    [(op.name, op.kind) for op in lowered.ops], "model")


def _from_store(folder: Path, m: dict, n_inputs: int, seed: int, input_files) -> Expected:
    tv = m["test_vectors"]
    why = (f"the source model {m['source']['path']} is missing or changed since the export" if m["source"]["path"]
           else "the export names no source model file")
    if input_files:
        raise DmxError(f"{folder}: cannot run --input files: {why}")
    if seed != tv["seed"] or n_inputs > tv["random"]:
        raise DmxError(f"{folder}: {why}, and the folder stores only {tv['random']} random vectors with seed "
                       f"{tv['seed']}; run with --seed {tv['seed']} --inputs {tv['random']} or less")
    if n_inputs == 0:
        raise DmxError("no inputs to run: give --inputs N")
    inputs = np.load(folder / tv["inputs"], allow_pickle=False)[:n_inputs]
    expected = np.load(folder / tv["expected"], allow_pickle=False)[:n_inputs]
    return Expected(inputs, expected.reshape(n_inputs, -1), None,
                    [(r["name"], r["op"]) for r in m["layers"]], "stored")


def verify_folder(path: Path, n_inputs: int = 8, seed: int = 0, input_files=(), opt: str = "-O2",
                  extra: tuple[str, ...] = ()) -> dict:
    """Build the folder with sanitizers, run it and compare with the reference (verify_model's shape).

    `opt` and `extra` (compiler flags) let tests trade optimisation for build time."""
    folder = Path(path)
    m = read_manifest(folder)
    exp = _from_model(folder, m, n_inputs, seed, input_files) or _from_store(folder, m, n_inputs, seed, input_files)
    inp, outp = m["input"], m["output"]
    with tempfile.TemporaryDirectory(prefix="dmx-host-") as tmp:
        exe = build(folder, Path(tmp), opt=opt, extra=extra)
        got = run(exe, exp.inputs.reshape(len(exp.inputs), -1), inp["dtype"], outp["dtype"], outp["size"],
                  Path(tmp), dump=exp.layers is not None, label=str(folder))
    m_abs, mism = diff(got.outputs, exp.outputs)
    outputs = [{"name": outp["name"], "max_abs_diff": _num(m_abs), "mismatches": mism, "values": int(exp.outputs.size)}]
    layers = []
    if exp.layers is not None:
        for i, (name, kind) in enumerate(exp.layer_ops):
            worst, count = 0.0, 0
            for want, dumped in zip(exp.layers, got.layers):
                w = np.asarray(want[i])
                g = np.frombuffer(dumped.get(i, b""), dtype=w.dtype)
                a, k = diff(g, w)
                worst, count = max(worst, a), count + k
            layers.append({"name": name, "op": kind, "max_abs_diff": _num(worst), "mismatches": count})
    return {"model": str(folder), "golden": "reference", "inputs": int(len(exp.inputs)),
            "bit_exact": mism == 0, "max_abs_diff": _num(m_abs), "outputs": outputs, "layers": layers,
            "expected_from": exp.source, "source_model": m["source"]["path"]}


def _num(x: float):
    return int(x) if float(x).is_integer() else float(x)


def have_compiler() -> bool:
    return shutil.which(CC) is not None
