"""Build and run the Cortex-M firmware harness (firmware/Makefile) on an exported
folder, and read what it prints, so bench and tests need not know make or QEMU."""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .corstone300 import ARENA_CHOICES, WEIGHTS_CHOICES
from .errors import DmxError

FIRMWARE_DIR = Path(__file__).resolve().parents[1] / "firmware"
CPUS = ("cortex-m55", "cortex-m7", "cortex-m4")
# SysTick ticks per 1000 instructions under QEMU -icount shift=5 (32 ns an
# instruction, 32 MHz SysTick); the firmware prints both numbers.
TICKS_PER_KINSN = 1024
REQUIRED_FILES = ("model.h", "input.h", "expected.h")


class FirmwareError(DmxError):
    """The firmware could not be built or did not produce a verdict."""


@dataclass(frozen=True)
class LayerCount:
    index: int
    name: str
    ticks: int
    instructions: int


@dataclass
class FirmwareRun:
    """What one `make sim` printed: the verdict, the counts, the outputs."""

    passed: bool
    exit_status: int | None  # the firmware's own exit status, when it got that far
    verdict: str  # the PASS / FAIL line, or "" when none was printed
    cpu: str = ""
    output_type: str = ""  # int8, float32, ... (C type of dmx_output_t)
    layers: list[LayerCount] = field(default_factory=list)
    total_ticks: int | None = None
    total_instructions: int | None = None
    overhead_ticks: int | None = None
    outputs: list[int | float] = field(default_factory=list)
    mismatches: list[tuple[int, str, str]] = field(default_factory=list)
    log: str = ""
    arena_region: str = ""  # the memory the arena and the weights were linked into (DTCM, QSPI, ...)
    weights_region: str = ""

    def counts(self) -> list[tuple[int, str, int]]:
        """(index, name, ticks) per layer: what must match between two runs."""
        return [(c.index, c.name, c.ticks) for c in self.layers]


SIMULATORS = {"qemu": "qemu-system-arm", "fvp": "FVP_Corstone_SSE-300_Ethos-U55"}


def missing_tools(sim: str | None = "qemu") -> list[str]:
    """The programs `make sim` (or, with sim=None, `make build`) needs that are not on PATH."""
    need = ["make", "arm-none-eabi-gcc", "arm-none-eabi-size"] + ([SIMULATORS[sim]] if sim else [])
    return [t for t in need if shutil.which(t) is None]


def check_model_dir(model_dir: str | Path) -> Path:
    """The folder as an absolute path, or a DmxError naming what is missing."""
    p = Path(model_dir).resolve()
    if not p.is_dir():
        raise DmxError(f"{model_dir}: no such directory (expected a folder written by dmxgen export)")
    missing = [f for f in REQUIRED_FILES if not (p / f).is_file()]
    if missing or not list(p.glob("*.c")):
        what = ", ".join(missing) or "no .c files"
        raise DmxError(f"{model_dir}: not a folder written by dmxgen export (missing {what})")
    return p


def default_build_dir(model_dir: Path, cpu: str) -> Path:
    return model_dir / f"build-{cpu}"


def _make(target: str, model_dir: Path, build_dir: Path, cpu: str, timeout: float, variables: dict[str, str]):
    args = ["make", "-s", "-C", str(FIRMWARE_DIR), target, f"MODEL={model_dir}", f"BUILD={build_dir}",
            f"CPU={cpu}"] + [f"{k}={v}" for k, v in variables.items() if v]
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FirmwareError(f"{model_dir}: make {target} gave no result in {timeout:.0f} s") from None


def _tools_or_raise(sim: str | None) -> None:
    missing = missing_tools(sim)
    if missing:
        raise FirmwareError(f"firmware needs {', '.join(missing)} on PATH (tools/setup.sh installs the Debian ones)")
    if not (FIRMWARE_DIR / "Makefile").is_file():
        raise FirmwareError(f"{FIRMWARE_DIR}/Makefile not found: the firmware harness ships with the dmxgen checkout")


def _check_placement(arena: str, weights: str) -> None:
    if arena and arena not in ARENA_CHOICES:
        raise DmxError(f"arena {arena!r} is not supported: use one of {', '.join(ARENA_CHOICES)}")
    if weights and weights not in WEIGHTS_CHOICES:
        raise DmxError(f"weights {weights!r} is not supported: use one of {', '.join(WEIGHTS_CHOICES)}")


def build(model_dir: str | Path, *, cpu: str = "cortex-m55", build_dir: str | Path | None = None,
          arena: str = "", weights: str = "", extra_cflags: str = "", timeout: float = 600) -> Path:
    """Compile and link the firmware for `cpu`; returns the ELF path. arena/weights: the
    memory to use (corstone300.ARENA_CHOICES, WEIGHTS_CHOICES; "" is the Makefile's auto)."""
    if cpu not in CPUS:
        raise DmxError(f"cpu {cpu!r} is not supported: use one of {', '.join(CPUS)}")
    _check_placement(arena, weights)
    _tools_or_raise(None)
    model = check_model_dir(model_dir)
    bdir = Path(build_dir).resolve() if build_dir else default_build_dir(model, cpu)
    r = _make("build", model, bdir, cpu, timeout, {"ARENA": arena, "WEIGHTS": weights, "EXTRA_CFLAGS": extra_cflags})
    if r.returncode != 0:
        raise FirmwareError(f"{model_dir}: firmware build for {cpu} failed: {_tail(r.stderr or r.stdout)}")
    return bdir / "firmware.elf"


def run(model_dir: str | Path, *, build_dir: str | Path | None = None, sim: str = "qemu", arena: str = "",
        weights: str = "", extra_cflags: str = "", timeout: float = 600) -> FirmwareRun:
    """Build (if needed) and run on the simulated Cortex-M55; a FAIL is returned, not raised."""
    if sim not in SIMULATORS:
        raise DmxError(f"sim {sim!r} is not supported: use one of {', '.join(SIMULATORS)}")
    elf = build(model_dir, build_dir=build_dir, arena=arena, weights=weights, extra_cflags=extra_cflags,
                timeout=timeout)
    _tools_or_raise(sim)
    r = _make("sim", check_model_dir(model_dir), elf.parent, "cortex-m55", timeout + 30,
              {"SIM": sim, "ARENA": arena, "WEIGHTS": weights, "EXTRA_CFLAGS": extra_cflags,
               "TIMEOUT": str(int(timeout))})
    result = parse(r.stdout)
    m = re.search(r"^firmware: exit status (\d+)$", r.stderr, re.M)
    result.exit_status = int(m.group(1)) if m else (0 if r.returncode == 0 else None)
    result.passed = r.returncode == 0 and result.verdict == "PASS"
    result.log = r.stdout + r.stderr
    result.arena_region, result.weights_region = placement(elf.parent)
    if not result.verdict:
        raise FirmwareError(f"{model_dir}: the firmware printed no PASS/FAIL line: {_tail(r.stderr or r.stdout)}")
    return result


def size(model_dir: str | Path, *, cpu: str = "cortex-m55", build_dir: str | Path | None = None,
         arena: str = "", weights: str = "", extra_cflags: str = "", timeout: float = 600) -> dict[str, int | str]:
    """text/data/bss of the image, the flash/RAM totals `make size` prints and where the
    arena and the weights went (arena_region, weights_region)."""
    elf = build(model_dir, cpu=cpu, build_dir=build_dir, arena=arena, weights=weights, extra_cflags=extra_cflags,
                timeout=timeout)
    r = _make("size", check_model_dir(model_dir), elf.parent, cpu, timeout,
              {"ARENA": arena, "WEIGHTS": weights, "EXTRA_CFLAGS": extra_cflags})
    if r.returncode != 0:
        raise FirmwareError(f"{model_dir}: make size failed: {_tail(r.stderr or r.stdout)}")
    return parse_size(r.stdout)


def placement(build_dir: str | Path) -> tuple[str, str]:
    """(arena region, weights region) of the last link in build_dir, from its generated an547.ld."""
    script = Path(build_dir) / "an547.ld"
    text = script.read_text() if script.is_file() else ""
    found = dict(re.findall(r'^REGION_ALIAS\("(ARENA|WEIGHTS)", *(\w+)\);$', text, re.M))
    return found.get("ARENA", ""), found.get("WEIGHTS", "")


def parse_size(text: str) -> dict[str, int | str]:
    out: dict[str, int | str] = {}
    m = re.search(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+[0-9a-f]+\s+\S+$", text, re.M)
    if m:
        out.update(text=int(m.group(1)), data=int(m.group(2)), bss=int(m.group(3)))
    for key, pattern in (("flash", r"^flash: (\d+)"), ("ram", r"^ram: (\d+)"), ("arena", r"of which arena (\d+)")):
        m = re.search(pattern, text, re.M)
        if m:
            out[key] = int(m.group(1))
    m = re.search(r"^placement: arena \d+ bytes in (\w+), weights (\d+) bytes in (\w+)$", text, re.M)
    if m:
        out.update(arena_region=m.group(1), weights=int(m.group(2)), weights_region=m.group(3))
    return out


_LAYER = re.compile(r"^LAYER (\d+) (.*) (\d+) (\d+)$")
_TOTAL = re.compile(r"^TOTAL (\d+) (\d+)$")
_MISMATCH = re.compile(r"^MISMATCH (\d+) got (\S+) expected (\S+)$")


def parse(text: str) -> FirmwareRun:
    """Read the records main.c prints (docs/firmware.md); other lines are ignored."""
    run_ = FirmwareRun(passed=False, exit_status=None, verdict="")
    for line in text.splitlines():
        line = line.rstrip()
        if m := _LAYER.match(line):
            run_.layers.append(LayerCount(int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))))
        elif m := _TOTAL.match(line):
            run_.total_ticks, run_.total_instructions = int(m.group(1)), int(m.group(2))
        elif line.startswith("OUTPUT "):
            run_.outputs.extend(line.split()[2:])
        elif m := _MISMATCH.match(line):
            run_.mismatches.append((int(m.group(1)), m.group(2), m.group(3)))
        elif line.startswith("COUNTER ") and (m := re.search(r"overhead=(\d+)", line)):
            run_.overhead_ticks = int(m.group(1))
        elif line.startswith("DMX "):
            fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
            run_.cpu, run_.output_type = fields.get("cpu", ""), fields.get("output_type", "")
        elif line == "PASS" or line.startswith("FAIL"):
            run_.verdict = line
    as_number = float if run_.output_type.startswith("float") else int
    run_.outputs = [as_number(v) for v in run_.outputs]
    run_.passed = run_.verdict == "PASS"
    return run_


def ticks_to_instructions(ticks: int) -> int:
    """QEMU -icount shift=5 SysTick ticks to instructions, rounded as the firmware does."""
    return (ticks * 1000 + TICKS_PER_KINSN // 2) // TICKS_PER_KINSN


def _tail(text: str, lines: int = 6) -> str:
    """The end of make's output; only the harness's own "firmware: ..." lines when it printed any."""
    kept = [ln for ln in text.strip().splitlines() if ln.strip()]
    own = [ln for ln in kept if ln.startswith("firmware: ")]
    kept = (own or kept)[-lines:]
    return " | ".join(kept) if kept else "(no output)"
