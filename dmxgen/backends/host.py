"""Build an exported folder with the host gcc and check it against the reference, to the bit.

`dmxgen verify OUT` lands here. The folder is compiled once, with sanitizers,
together with a small harness (templates/c/host_main.c.j2) in a temporary
build directory; one process runs every input and dumps each layer's output
through the DMX_LAYER_OUTPUT hook, so a mismatch names the first layer that
differs. The caller (dmxgen/targets.py) passes the expected values: the
pipeline re-run on the source model when it is still there, else the test
vectors stored in the folder at export time (`stored_expected`).
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
from . import c_render
from .c import load_vectors, manifest_io

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


def harness_io(manifest: dict) -> tuple[list[dict], list[dict]]:
    """The C types and size macros of the model's inputs and outputs, as model.h names them."""
    single = "input" in manifest
    sides = []
    for role in ("input", "output"):
        infos = manifest_io(manifest, role)
        sides.append([{"type": f"dmx_{role}_t" if single else f"dmx_{role}{k}_t",
                       "size": f"DMX_{role.upper()}_SIZE" if single else f"DMX_{role.upper()}{k}_SIZE"}
                      for k, _ in enumerate(infos)])
    return sides[0], sides[1]


def build(folder: Path, workdir: Path, *, sanitize: bool = True, hooks: bool = True, opt: str = "-O2",
          extra: tuple[str, ...] = (), harness: str = "host_main.c.j2") -> Path:
    """Compile folder/*.c with the harness into workdir/prog; raise HostBuildError on failure."""
    folder, workdir = Path(folder).resolve(), Path(workdir)
    ins, outs = harness_io(read_manifest(folder))
    (workdir / "host_main.c").write_text(c_render.render(harness, ins=ins, outs=outs))
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
    outputs: list[list[np.ndarray]]  # per input vector: one flat array per model output
    layers: list[dict[int, bytes]]  # per input: layer index -> output bytes


def _vector_bytes(vectors: list[list[np.ndarray]], inputs: list[dict]) -> bytes:
    """Input vectors as the harness reads them: each model input's raw values, in graph order."""
    return b"".join(np.ascontiguousarray(a, dtype=io["dtype"]).reshape(-1).tobytes()
                    for one in vectors for a, io in zip(one, inputs))


def run(exe: Path, vectors: list[list[np.ndarray]], inputs: list[dict], outputs: list[dict], workdir: Path,
        dump: bool = True, label: str = "") -> HostRun:
    """Run every vector (one array per model input) through the harness in one process;
    `inputs`/`outputs` are the manifest's entries; `label` names the folder in errors."""
    workdir = Path(workdir)
    inputs_path, outputs_path, layers_path = workdir / "in.bin", workdir / "out.bin", workdir / "layers.bin"
    inputs_path.write_bytes(_vector_bytes(vectors, inputs))
    cmd = [str(exe), str(inputs_path), str(outputs_path)] + ([str(layers_path)] if dump else [])
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **RUN_ENV}, timeout=600)
    if r.returncode != 0:
        raise HostBuildError(f"{label or exe}: generated code failed at run time "
                             f"(exit {r.returncode}): {_first_error(r.stderr)}", r.stderr)
    raw, pos, got = outputs_path.read_bytes(), 0, []
    for _ in vectors:
        one = []
        for io in outputs:
            a = np.frombuffer(raw, dtype=io["dtype"], count=io["size"], offset=pos)
            pos += a.nbytes
            one.append(a)
        got.append(one)
    return HostRun(got, _read_dumps(layers_path, len(vectors)) if dump else [])


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


def time_inference(exe: Path, vector: list[np.ndarray], inputs: list[dict], repeat: int, workdir: Path) -> float:
    """Seconds per dmx_model_run on the host (harness built without hooks or sanitizers)."""
    path = Path(workdir) / "time_in.bin"
    path.write_bytes(_vector_bytes([vector], inputs))
    r = subprocess.run([str(exe), "--time", str(repeat), str(path)], capture_output=True, text=True, check=True)
    return float(r.stdout.strip())


# -- verify ---------------------------------------------------------------------------

@dataclass
class Expected:
    inputs: list[list[np.ndarray]]  # per vector: one array per model input
    outputs: list[list[np.ndarray]]  # per vector: one array per model output
    layers: list[dict[int, np.ndarray]] | None  # per input, from the lowered graph's reference
    layer_ops: list[tuple[str, str]]  # (name, kind) per layer
    source: str  # "model" or "stored"


def stored_expected(folder: Path, m: dict, n_inputs: int, seed: int, input_files, why: str) -> Expected:
    """The test vectors the export stored, when the source model cannot be re-run (`why`)."""
    tv = m["test_vectors"]
    if input_files:
        raise DmxError(f"{folder}: cannot run --input files: {why}")
    if seed != tv["seed"] or n_inputs > tv["random"]:
        raise DmxError(f"{folder}: {why}, and the folder stores only {tv['random']} random vectors with seed "
                       f"{tv['seed']}; run with --seed {tv['seed']} --inputs {tv['random']} or less")
    if n_inputs == 0:
        raise DmxError("no inputs to run: give --inputs N")
    inputs = load_vectors(folder, tv["inputs"], manifest_io(m, "input"), n_inputs)
    expected = load_vectors(folder, tv["expected"], manifest_io(m, "output"), n_inputs)
    return Expected(inputs, expected, None, [(r["name"], r["op"]) for r in m["layers"]], "stored")


def check_folder(folder: Path, m: dict, exp: Expected, opt: str = "-O2", extra: tuple[str, ...] = ()) -> dict:
    """Build the folder with sanitizers, run `exp.inputs` and compare with `exp` (verify_model's shape)."""
    folder = Path(folder)
    ins, outs = manifest_io(m, "input"), manifest_io(m, "output")
    with tempfile.TemporaryDirectory(prefix="dmx-host-") as tmp:
        exe = build(folder, Path(tmp), opt=opt, extra=extra)
        got = run(exe, exp.inputs, ins, outs, Path(tmp), dump=exp.layers is not None, label=str(folder))
    outputs = []
    for k, io in enumerate(outs):
        want = np.concatenate([np.asarray(v[k]).reshape(-1) for v in exp.outputs])
        have = np.concatenate([v[k] for v in got.outputs])
        m_abs, mism = diff(have, want)
        outputs.append({"name": io["name"], "max_abs_diff": _num(m_abs), "mismatches": mism,
                        "values": int(want.size)})
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
    worst = max(float(o["max_abs_diff"]) for o in outputs)
    return {"model": str(folder), "golden": "reference", "inputs": int(len(exp.inputs)),
            "bit_exact": all(o["mismatches"] == 0 for o in outputs), "max_abs_diff": _num(worst),
            "outputs": outputs, "layers": layers, "expected_from": exp.source, "source_model": m["source"]["path"]}


def _num(x: float):
    return int(x) if float(x).is_integer() else float(x)


def have_compiler() -> bool:
    return shutil.which(CC) is not None


def run_early_exit(folder: Path, inputs: list[list[np.ndarray]], m: dict, opt: str = "-O2",
                   extra: tuple[str, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """(exit taken per vector, output values [n, size]) of dmx_model_run_ee, built with sanitizers."""
    folder = Path(folder)
    inp, out = manifest_io(m, "input")[0], manifest_io(m, "output")[0]
    with tempfile.TemporaryDirectory(prefix="dmx-host-ee-") as tmp:
        exe = build(folder, Path(tmp), hooks=False, opt=opt, extra=extra, harness="host_ee_main.c.j2")
        (Path(tmp) / "in.bin").write_bytes(_vector_bytes(inputs, [inp]))
        r = subprocess.run([str(exe), str(Path(tmp) / "in.bin"), str(Path(tmp) / "out.bin")], capture_output=True,
                           text=True, env={**os.environ, **RUN_ENV}, timeout=600)
        if r.returncode != 0:
            raise HostBuildError(f"{folder}: dmx_model_run_ee failed at run time (exit {r.returncode}): "
                                 f"{_first_error(r.stderr)}", r.stderr)
        raw = (Path(tmp) / "out.bin").read_bytes()
    record = np.dtype([("exit", "<i4"), ("out", np.dtype(out["dtype"]), (out["size"],))])
    rows = np.frombuffer(raw, dtype=record)
    if len(rows) != len(inputs):
        raise HostBuildError(f"{folder}: dmx_model_run_ee wrote {len(rows)} results for {len(inputs)} inputs", r.stderr)
    return rows["exit"].astype(np.int64), rows["out"].copy()


def check_early_exit(folder: Path, m: dict, inputs: list[list[np.ndarray]], exits: np.ndarray,
                     outputs: np.ndarray, opt: str = "-O2", extra: tuple[str, ...] = ()) -> dict:
    """dmx_model_run_ee against the reference's exits and logits, per vector and to the bit."""
    got_exits, got = run_early_exit(folder, inputs, m, opt=opt, extra=extra)
    want = np.asarray(outputs).reshape(got.shape)
    wrong_exit = np.flatnonzero(got_exits != exits)
    wrong_bytes = np.flatnonzero((got != want).any(axis=1))
    return {"function": m["early_exit"]["function"], "inputs": len(inputs),
            "exits": np.bincount(got_exits, minlength=len(m["early_exit"]["thresholds"]) + 1).tolist(),
            "exit_mismatches": int(len(wrong_exit)), "output_mismatches": int(len(wrong_bytes)),
            "first_mismatch": int(min([*wrong_exit, *wrong_bytes])) if len(wrong_exit) or len(wrong_bytes) else None,
            "bit_exact": not len(wrong_exit) and not len(wrong_bytes)}
