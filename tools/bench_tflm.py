#!/usr/bin/env python3
"""TensorFlow Lite Micro, the peer, measured on the same emulated Cortex-M55 as dmxgen's firmware.

    .venv/bin/python tools/bench_tflm.py MODEL.tflite [--kernels cmsis-nn,reference] [--input x.npy]
        [--tflm-src DIR] [--build build/tflm] [--jobs 2] [--json] [-o tflm.json]

Builds TFLM (release: -DNDEBUG -DTF_LITE_STRIP_ERROR_STRINGS, -O2 everywhere) with CMSIS-NN
kernels and/or its reference kernels with arm-none-eabi-gcc from the source lists of
tensorflow/lite/micro/tools/make/*.inc, links it with firmware/ (startup, an547.ld, the SysTick
counter) and tools/bench_tflm_harness.cc, and runs one counted Invoke() (after a warm-up one) on
QEMU mps3-an547 under -icount shift=5: instructions per inference, per operator (each kernel's
invoke, hook cost taken out) and arena_used_bytes. Sources: --tflm-src (a folder holding
tflite-micro/, CMSIS-NN/, flatbuffers/, gemmlowp/, kissfft/, ruy/), by default ../shared/peers/tflm/;
without them it says so and exits 0. Objects are cached under --build.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from dmxgen import firmware  # noqa: E402

DEFAULT_SRC = ROOT.parent / "shared" / "peers" / "tflm"
HARNESS = Path(__file__).resolve().parent / "bench_tflm_harness.cc"
KERNELS = ("cmsis-nn", "reference")
PARTS = ("tflite-micro", "CMSIS-NN", "flatbuffers", "gemmlowp", "kissfft", "ruy")
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-ar", "arm-none-eabi-size", "qemu-system-arm")
CPU = ["-mcpu=cortex-m55", "-mfpu=auto", "-mfloat-abi=hard", "-mthumb"]
# TFLM's Makefile for TARGET_ARCH=cortex-m55 with gcc, BUILD_TYPE=release, all at -O2 (README of the sources)
COMMON = CPU + ["-O2", "-funsigned-char", "-fomit-frame-pointer", "-ffunction-sections", "-fdata-sections",
                "-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON", "-DTF_LITE_MCU_DEBUG_LOG",
                "-DKERNELS_OPTIMIZED_FOR_SPEED", "-DNDEBUG", "-DTF_LITE_STRIP_ERROR_STRINGS"]
CMSIS_DEFINES = ["-DCMSIS_NN", "-DARM_NN_ENABLE_F16=0", "-DARM_NN_ENABLE_F32=0"]
CXX_ONLY = ["-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics"]
C_ONLY = ["-std=c11"]
ARENA_BYTES = 2 * 1024 * 1024  # ISRAM is 4 MB; arena_used_bytes is what TFLM actually takes
FLASH_SECTIONS = (".vectors", ".text", ".rodata", ".ARM.extab", ".ARM.exidx", ".init_array", ".data")


class BenchError(Exception):
    """Why the peer could not be built or run (one line)."""


# ---- sources -----------------------------------------------------------------------------------

def check_sources(src: Path) -> str | None:
    """None when `src` holds what the build needs, else what is missing."""
    missing = [p for p in PARTS if not (src / p).is_dir()]
    if missing:
        return f"{src}: no {', '.join(missing)}"
    if not (src / "tflite-micro" / "tensorflow" / "lite" / "micro" / "tools" / "make" / "sources.inc").is_file():
        return f"{src}: no tflite-micro/tensorflow/lite/micro/tools/make/sources.inc"
    return None


def _inc_lists(make_dir: Path) -> dict[str, list[str]]:
    """Variable -> the $(TENSORFLOW_ROOT) file names assigned to it (:= and +=) in the .inc files."""
    lists: dict[str, list[str]] = {}
    for inc in ("sources.inc", "additional_kernels.inc"):
        path = make_dir / inc
        if not path.is_file():
            continue
        text = path.read_text().replace("\\\n", " ")
        for m in re.finditer(r"^([A-Z_]+)\s*(:=|\+=)(.*)$", text, re.M):
            names = re.findall(r"\$\(TENSORFLOW_ROOT\)(\S+?\.(?:cc|c))\b(?!\))", m.group(3))
            lists.setdefault(m.group(1), []).extend(names)
    return lists


def source_files(src: Path, kernels: str) -> list[Path]:
    """TFLM's MICROLITE_CC_SRCS for this build: the interpreter core (sources.inc's wildcards), the
    shared TFLite code (its `find`, without array.cc as TF_LITE_STATIC_MEMORY builds do), the
    kernel list; for CMSIS-NN, kernels/cmsis_nn/ in place of their reference namesakes and
    CMSIS-NN's int8/int16 sources."""
    tf = src / "tflite-micro"
    micro = tf / "tensorflow" / "lite" / "micro"
    core = [p for d in (micro, micro / "arena_allocator", micro / "memory_planner", micro / "tflite_bridge")
            for p in sorted(d.glob("*.cc")) if not p.name.endswith("_test.cc")]
    shared = sorted(p for p in (tf / "tensorflow").rglob("*") if p.suffix in (".cc", ".c")
                    and not _under(p, micro) and not _under(p, tf / "tensorflow" / "lite" / "experimental")
                    and p != tf / "tensorflow" / "lite" / "array.cc")
    listed = _inc_lists(micro / "tools" / "make").get("MICROLITE_CC_KERNEL_SRCS", [])
    kernel_srcs = [tf / name for name in listed if (tf / name).is_file()]
    if not kernel_srcs:
        raise BenchError(f"{micro}/tools/make/sources.inc lists no kernel sources")
    if kernels == "cmsis-nn":
        optimized = {p.name: p for p in sorted((micro / "kernels" / "cmsis_nn").glob("*.cc"))}
        kernel_srcs = [optimized.get(p.name, p) if p.parent == micro / "kernels" else p for p in kernel_srcs]
        cmsis = sorted(p for p in (src / "CMSIS-NN" / "Source").rglob("*.c")
                       if not re.search(r"_f(16|32)\.c$", p.name) and p.name != "arm_nntables_flt.c")
        kernel_srcs += cmsis
    return core + shared + kernel_srcs


def _under(p: Path, d: Path) -> bool:
    return d in p.parents


def include_flags(src: Path) -> list[str]:
    dirs = [src / "tflite-micro", src / "gemmlowp", src / "flatbuffers" / "include", src / "kissfft",
            src / "ruy", src / "CMSIS-NN", src / "CMSIS-NN" / "Include"]
    return [f"-I{d}" for d in dirs]


# ---- building ----------------------------------------------------------------------------------

def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def check_cxx_headers() -> str | None:
    """None when arm-none-eabi-g++ finds the C++ standard headers TFLM includes."""
    r = subprocess.run(["arm-none-eabi-g++", *CPU, "-x", "c++", "-fsyntax-only", "-"], input="#include <new>\n"
                       "#include <cstdint>\n", capture_output=True, text=True)
    if r.returncode != 0:
        return ("arm-none-eabi-g++ has no C++ headers (<new>, <cstdint>): apt-get install "
                "libstdc++-arm-none-eabi-newlib (tools/setup.sh does)")
    return None


def _flags(src: Path, kernels: str) -> list[str]:
    return COMMON + (CMSIS_DEFINES if kernels == "cmsis-nn" else []) + include_flags(src)


def _compile(cmd: list[str], src: Path, obj: Path, store: Path) -> str | None:
    """Compile `src` to `obj`, or reuse the object of an identical translation unit from `store`.

    Most files preprocess to the same text with and without -DCMSIS_NN, so the second kernel set
    reuses the first one's objects; the key (preprocessed text + command) sits beside the object.
    """
    key_file = obj.with_suffix(".key")
    fresh = obj.is_file() and obj.stat().st_mtime >= src.stat().st_mtime
    if fresh and key_file.is_file():
        return None
    pre = subprocess.run(cmd + ["-E", str(src)], capture_output=True)
    if pre.returncode != 0:
        return _tail(pre.stderr.decode(errors="replace"), 1)
    codegen = [c for c in cmd if not c.startswith(("-D", "-I"))]
    key = hashlib.sha256("\0".join(codegen).encode() + b"\0" + pre.stdout).hexdigest()
    stored = store / f"{key}.o"
    obj.parent.mkdir(parents=True, exist_ok=True)
    if not fresh:
        if stored.is_file():
            shutil.copyfile(stored, obj)
        else:
            tmp = obj.with_suffix(".o.tmp")
            r = subprocess.run(cmd + ["-c", str(src), "-o", str(tmp)], capture_output=True, text=True)
            if r.returncode != 0:
                return _tail(r.stderr, 1) if r.stderr.strip() else f"exit {r.returncode}"
            tmp.replace(obj)
    if not stored.is_file():
        store.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(obj, stored.with_suffix(".tmp"))
        stored.with_suffix(".tmp").replace(stored)
    key_file.write_text(key + "\n")
    return None


def compile_all(jobs: list[tuple[list[str], Path, Path]], store: Path, workers: int, progress) -> None:
    """Bring every (command, source, object) up to date, -j`workers` at a time."""
    todo = [(cmd, s, o) for cmd, s, o in jobs
            if not (o.is_file() and o.with_suffix(".key").is_file() and o.stat().st_mtime >= s.stat().st_mtime)]
    if not todo:
        return
    progress(f"compiling {len(todo)} of {len(jobs)} files with -j{workers} (identical ones are reused)")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        errors = [(s, e) for (_, s, _), e in zip(todo, pool.map(lambda j: _compile(j[0], j[1], j[2], store), todo))
                  if e]
    if errors:
        s, e = errors[0]
        raise BenchError(f"{len(errors)} files failed to compile; first {s}: {e}")


def build_library(src: Path, kernels: str, build: Path, workers: int, progress) -> Path:
    """libtflm.a for this kernel set, under a folder named by the flags (so a flag change rebuilds)."""
    flags = _flags(src, kernels)
    tag = hashlib.sha256("\0".join(flags + [str(src.resolve())]).encode()).hexdigest()[:12]
    lib_dir = build / f"{kernels}-{tag}"
    files = source_files(src, kernels)
    jobs = []
    for f in files:
        rel = f.relative_to(src)
        lang = CXX_ONLY if f.suffix == ".cc" else C_ONLY
        tool = "arm-none-eabi-g++" if f.suffix == ".cc" else "arm-none-eabi-gcc"
        jobs.append(([tool, *flags, *lang], f, lib_dir / "obj" / rel.with_suffix(".o")))
    compile_all(jobs, build / "objects", workers, progress)
    lib = lib_dir / "libtflm.a"
    newest = max(o.stat().st_mtime for _, _, o in jobs)
    if not lib.is_file() or lib.stat().st_mtime < newest:
        tmp = lib.with_suffix(".a.tmp")
        tmp.unlink(missing_ok=True)
        listing = lib_dir / "objects.txt"
        listing.write_text("\n".join(str(o) for _, _, o in jobs) + "\n")
        r = subprocess.run(["arm-none-eabi-ar", "rcs", str(tmp), f"@{listing}"], capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError(f"arm-none-eabi-ar failed: {r.stderr.strip()}")
        tmp.replace(lib)
    return lib


# ---- the model as C ----------------------------------------------------------------------------

def model_ops(model: bytes) -> tuple[list[str], int]:
    """The builtin operator names the model uses, in first-use order, and its number of operators."""
    from tflite.BuiltinOperator import BuiltinOperator
    from tflite.Model import Model

    names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    m = Model.GetRootAsModel(model, 0)
    codes = [m.OperatorCodes(i) for i in range(m.OperatorCodesLength())]
    out = []
    for i in range(m.SubgraphsLength()):
        sg = m.Subgraphs(i)
        for j in range(sg.OperatorsLength()):
            oc = codes[sg.Operators(j).OpcodeIndex()]
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            if code == BuiltinOperator.CUSTOM:
                raise BenchError(f"custom operator {oc.CustomCode()!r}: the harness registers builtin ones only")
            if names.get(code, str(code)) not in out:
                out.append(names.get(code, str(code)))
    return out, sum(m.Subgraphs(i).OperatorsLength() for i in range(m.SubgraphsLength()))


def input_bytes(model: bytes) -> int:
    """Bytes of the model's first input tensor."""
    from tflite.Model import Model
    from tflite.TensorType import TensorType

    sizes = {TensorType.INT8: 1, TensorType.UINT8: 1, TensorType.INT16: 2, TensorType.INT32: 4,
             TensorType.FLOAT32: 4}
    sg = Model.GetRootAsModel(model, 0).Subgraphs(0)
    t = sg.Tensors(sg.Inputs(0))
    if t.Type() not in sizes:
        raise BenchError(f"input tensor type {t.Type()} is not supported by the harness")
    return int(np.prod(t.ShapeAsNumpy())) * sizes[t.Type()]


def resolver_methods(src: Path) -> dict[str, tuple[str, str]]:
    """BuiltinOperator name -> (MicroMutableOpResolver method, Register_ function), read from the header."""
    header = (src / "tflite-micro" / "tensorflow" / "lite" / "micro" / "micro_mutable_op_resolver.h").read_text()
    pattern = re.compile(r"TfLiteStatus (Add\w+)\(\s*const TFLMRegistration& registration\s*=\s*(?:tflite::)?"
                         r"(Register_\w+)\(\)\)\s*\{\s*return AddBuiltin\(BuiltinOperator_(\w+),")
    return {op: (method, reg) for method, reg, op in pattern.findall(header)}


def model_header(ops: list[str], n_operators: int, methods: dict, input_len: int, arena: int) -> str:
    """tflm_model.h for the harness: the ops to register (TFLM_OPS), sizes, the data's declarations."""
    unknown = [op for op in ops if op not in methods]
    if unknown:
        raise BenchError(f"operator(s) {', '.join(unknown)}: no MicroMutableOpResolver method takes a registration")
    lines = ["/* Generated by tools/bench_tflm.py. */", "#include <stdint.h>",
             'extern "C" const uint8_t tflm_model[];', 'extern "C" const uint8_t tflm_input[];',
             f"#define TFLM_INPUT_BYTES {input_len}", f"#define TFLM_NUM_KINDS {len(ops)}",
             f"#define TFLM_NUM_OPERATORS {n_operators}",
             f"#define TFLM_ARENA_BYTES {arena}", "#define TFLM_OPS(X) \\"]
    lines += [f'    X({i}, {methods[op][0]}, {methods[op][1]}, "{op}") \\' for i, op in enumerate(ops)]
    lines.append("    /* end of TFLM_OPS */")
    return "\n".join(lines) + "\n"


def model_data(model: bytes, inputs: bytes) -> str:
    """tflm_model_data.c: the flatbuffer and the input as C arrays (C, not C++: it compiles fast)."""
    return "/* Generated by tools/bench_tflm.py. */\n#include <stdint.h>\n" + "\n".join(
        _c_array(name, data) for name, data in (("tflm_model", model), ("tflm_input", inputs))) + "\n"


def _c_array(name: str, data: bytes) -> str:
    rows = [",".join(str(b) for b in data[i:i + 32]) for i in range(0, len(data), 32)]
    return f"const uint8_t {name}[{len(data)}] __attribute__((aligned(16))) = {{\n" + ",\n".join(rows) + "\n};"


def sample_input(model: bytes, npy: str | None, seed: int) -> bytes:
    """The input bytes: the first input of a .npy, or uniform random bytes (seeded)."""
    n = input_bytes(model)
    if npy:
        arr = np.load(npy, allow_pickle=False)
        data = np.ascontiguousarray(arr).reshape(-1).tobytes()[:n]
        if len(data) != n:
            raise BenchError(f"{npy}: fewer than the {n} bytes of one input")
        return data
    return np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8).tobytes()


# ---- linking and running -----------------------------------------------------------------------

def link(src: Path, kernels: str, lib: Path, header: str, data: str, work: Path) -> Path:
    """The firmware image: harness + firmware startup/counter + libtflm.a, with an547.ld (arena in ISRAM)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "tflm_model.h").write_text(header)
    (work / "tflm_model_data.c").write_text(data)
    fw = firmware.FIRMWARE_DIR
    c_flags = CPU + ["-O2", "-ffunction-sections", "-fdata-sections", f"-I{fw}"]
    harness_flags = _flags(src, kernels)
    steps = [
        ["arm-none-eabi-gcc", *c_flags, "-c", str(fw / "startup.c"), "-o", str(work / "startup.o")],
        ["arm-none-eabi-gcc", *c_flags, "-c", str(fw / "counter.c"), "-o", str(work / "counter.o")],
        ["arm-none-eabi-gcc", *CPU, "-O0", "-c", str(work / "tflm_model_data.c"), "-o", str(work / "data.o")],
        # TFLM's headers as system headers: -Wall -Wextra -Werror judge the harness, not them
        ["arm-none-eabi-g++", *[f.replace("-I", "-isystem", 1) if f.startswith("-I") else f for f in harness_flags],
         *CXX_ONLY, "-Wall", "-Wextra", "-Werror", f"-I{fw}", f"-I{work}", "-c", str(HARNESS),
         "-o", str(work / "harness.o")],
        # the arena in ISRAM, constants (the model) in QSPI: both spellings an547.ld has known
        ["arm-none-eabi-gcc", "-E", "-P", "-undef", "-x", "c", "-DDMX_ARENA_ISRAM", "-DDMX_ARENA_REGION=ISRAM",
         "-DDMX_WEIGHTS_QSPI", f"-DDMX_ARENA_BYTES={ARENA_BYTES}", str(fw / "an547.ld"), "-o", str(work / "an547.ld")],
        ["arm-none-eabi-g++", *CPU, "--specs=rdimon.specs", "-nostartfiles", "-T", str(work / "an547.ld"),
         "-Wl,--gc-sections", f"-Wl,-Map={work / 'firmware.map'}", str(work / "harness.o"), str(work / "startup.o"),
         str(work / "counter.o"), str(work / "data.o"), str(lib), "-o", str(work / "firmware.elf")],
    ]
    for cmd in steps:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError(f"{Path(cmd[0]).name} failed: {_tail(r.stderr)}")
    return work / "firmware.elf"


def image_size(elf: Path) -> dict[str, int]:
    """flash (code, constants, the model flatbuffer, .data image) and static RAM (.data + .bss; the arena
    is a section of its own) of the image."""
    r = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, check=True)
    sections = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\.\S+)\s+(\d+)\s+\d+$", r.stdout, re.M)}
    return {"flash": sum(sections.get(s, 0) for s in FLASH_SECTIONS),
            "static_ram": sections.get(".data", 0) + sections.get(".bss", 0)}


def run_qemu(elf: Path, timeout: float) -> str:
    cmd = ["qemu-system-arm", "-M", "mps3-an547", "-cpu", "cortex-m55", "-nographic", "-monitor", "none",
           "-serial", "none", "-semihosting-config", "enable=on,target=native",
           "-icount", "shift=5,align=off,sleep=off", "-kernel", str(elf)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{elf}: no result from QEMU in {timeout:.0f} s") from None
    if r.returncode != 0 or not re.search(r"^PASS$", r.stdout, re.M):
        raise BenchError(f"{elf}: the harness failed (exit {r.returncode}): {_tail(r.stdout + r.stderr)}")
    return r.stdout


def parse_run(text: str) -> dict:
    """The harness's records -> instructions, per-op list, arena_used_bytes, output bytes."""
    m = re.search(r"^TFLM arena_used_bytes=(\d+) ops=(\d+)$", text, re.M)
    total = re.search(r"^TOTAL (\d+) (\d+)$", text, re.M)
    if not m or not total:
        raise BenchError(f"the harness printed no TFLM/TOTAL line: {_tail(text)}")
    ops = [{"index": int(i), "op": op, "ticks": int(t), "instructions": int(n)}
           for i, op, t, n in re.findall(r"^OP (\d+) (\S+) (\d+) (\d+)$", text, re.M)]
    output = [int(v) for line in re.findall(r"^OUTPUT \d+ (.*)$", text, re.M) for v in line.split()]
    return {"arena_used_bytes": int(m.group(1)), "operators": int(m.group(2)), "ticks": int(total.group(1)),
            "instructions": int(total.group(2)), "ops": ops, "output": output}


def measure(model_path: Path, kernels: str, *, src: Path = DEFAULT_SRC, build: Path = ROOT / "build" / "tflm",
            workers: int = 2, npy: str | None = None, seed: int = 0, timeout: float = 1800,
            progress=lambda msg: None) -> dict:
    """Build (cached) and run TFLM with `kernels` on one model; returns the figures as a dict."""
    if kernels not in KERNELS:
        raise BenchError(f"kernels {kernels!r}: use one of {', '.join(KERNELS)}")
    src = Path(src).resolve()  # one spelling of the paths, so the object cache matches whatever path led here
    model = model_path.read_bytes()
    ops, n_operators = model_ops(model)
    inputs = sample_input(model, npy, seed)
    header = model_header(ops, n_operators, resolver_methods(src), len(inputs), ARENA_BYTES)
    lib = build_library(src, kernels, build, workers, progress)
    elf = link(src, kernels, lib, header, model_data(model, inputs), build / "runs" / f"{model_path.stem}-{kernels}")
    progress(f"running {model_path.name} with TFLM {kernels} kernels on QEMU")
    result = parse_run(run_qemu(elf, timeout))
    size = image_size(elf)
    result.update(model=model_path.stem, kernels=kernels, flash=size["flash"],
                  ram=size["static_ram"] + result["arena_used_bytes"])
    return result


def _tail(text: str, lines: int = 4) -> str:
    kept = [ln for ln in text.strip().splitlines() if ln.strip()][-lines:]
    return " | ".join(kept) or "(no output)"


# ---- command line ------------------------------------------------------------------------------

def render(results: list[dict]) -> str:
    from dmxgen.commands.common import table

    parts = []
    for r in results:
        rows = [[o["index"], o["op"], f"{o['instructions']:,}",
                 f"{100 * o['instructions'] / r['instructions']:.1f}%"] for o in r["ops"]]
        counted = sum(o["instructions"] for o in r["ops"])
        rows.append(["", "interpreter (outside kernels)", f"{r['instructions'] - counted:,}", ""])
        rows.append(["", "total Invoke()", f"{r['instructions']:,}", "100.0%"])
        parts.append(f"{r['model']}: TFLM with {r['kernels']} kernels, one Invoke() on QEMU mps3-an547 (-icount)\n"
                     + table(rows, ["#", "op", "instructions", "share"])
                     + f"\narena_used_bytes {r['arena_used_bytes']:,}; flash {r['flash']:,} B; "
                       f"RAM {r['ram']:,} B (.data + .bss + arena used)")
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help=".tflite files")
    ap.add_argument("--kernels", default=",".join(KERNELS), help="comma-separated: " + ", ".join(KERNELS))
    ap.add_argument("--tflm-src", default=None, help=f"TFLM + CMSIS-NN sources (default {DEFAULT_SRC})")
    ap.add_argument("--build", default=str(ROOT / "build" / "tflm"), help="build cache folder")
    ap.add_argument("--jobs", "-j", type=int, default=2, help="parallel compiles")
    ap.add_argument("--input", default=None, help=".npy whose first input is used (default: random bytes)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random input")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds one QEMU run may take")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("-o", "--output", default=None, help="also write the results as JSON here (for dmxgen report "
                    "--tflm)")
    args = ap.parse_args(argv)
    kernels = [k for k in args.kernels.split(",") if k]
    if bad := [k for k in kernels if k not in KERNELS]:
        print(f"bench_tflm: unknown --kernels {bad[0]!r}: use {', '.join(KERNELS)}", file=sys.stderr)
        return 2
    src = Path(args.tflm_src) if args.tflm_src else DEFAULT_SRC
    if problem := check_sources(src):
        if args.tflm_src:
            print(f"bench_tflm: {problem}", file=sys.stderr)
            return 2
        print(f"bench_tflm: skipped: no TFLM sources ({problem}); give --tflm-src", file=sys.stderr)
        return 0
    if missing := missing_tools():
        print(f"bench_tflm: needs {', '.join(missing)} on PATH (tools/setup.sh)", file=sys.stderr)
        return 2
    if problem := check_cxx_headers():
        print(f"bench_tflm: {problem}", file=sys.stderr)
        return 2
    for m in args.models:
        if not Path(m).is_file():
            print(f"bench_tflm: {m}: no such file", file=sys.stderr)
            return 2
    say = (lambda msg: None) if args.json else (lambda msg: print(f"bench_tflm: {msg}", file=sys.stderr))
    try:
        results = [measure(Path(m), k, src=src, build=Path(args.build), workers=args.jobs, npy=args.input,
                           seed=args.seed, timeout=args.timeout, progress=say) for m in args.models for k in kernels]
    except BenchError as e:
        print(f"bench_tflm: {e}", file=sys.stderr)
        return 1
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2) if args.json else render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
