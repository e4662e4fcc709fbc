"""`dmxgen bench` on an early-exit export (a helper of commands/bench.py, not a command): average instructions with and without early exit, and
what the exit branches add to flash.

firmware/main.c (built with -DDMX_FW_EARLY_EXIT for a folder holding model_ee.h) runs
dmx_model_run and dmx_model_run_ee on every stored vector and prints one EE_AVERAGE line; the
flash bytes come from the two model objects the firmware build compiled: model_ee.o holds the
whole early-exit model (its own copy of the backbone's constants, so that it links without
model.o), and its flash minus model.o's is what the exit branches cost.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

_AVERAGE = re.compile(r"^EE_AVERAGE vectors=(\d+) run=(\d+) ee=(\d+) exits=(\S+)$", re.M)
_VECTOR = re.compile(r"^EE \d+ exit=(-?\d+) expected=-?\d+ run=\d+ ee=(\d+)", re.M)
_FLASH = re.compile(r"^\.(text|rodata|dmx_weights|data)\b")
_RAM = re.compile(r"^\.(data|bss|dmx_arena)\b")


def averages(log: str) -> dict | None:
    """The firmware's EE_AVERAGE record, or None (not an early-exit export)."""
    m = _AVERAGE.search(log)
    if m is None:
        return None
    exits = [int(v) for v in m.group(4).split(",")]
    return {"vectors": int(m.group(1)), "instructions_without_early_exit": int(m.group(2)),
            "instructions_with_early_exit": int(m.group(3)), "exits": exits,
            "instructions_per_exit": per_exit(log, len(exits))}


def per_exit(log: str, n_exits: int) -> list[int | None]:
    """Mean instructions of the early-exit run over the vectors that left at each exit (None: none did)."""
    sums, counts = [0] * n_exits, [0] * n_exits
    for m in _VECTOR.finditer(log):
        k = int(m.group(1))
        if 0 <= k < n_exits:
            sums[k] += int(m.group(2))
            counts[k] += 1
    return [s // c if c else None for s, c in zip(sums, counts)]


def object_flash(obj: Path, size_tool: str = "arm-none-eabi-size") -> int | None:
    """Bytes of an object's sections that go to flash (code, constants, weights, .data image)."""
    return _section_bytes(obj, _FLASH, size_tool)


def object_ram(obj: Path, size_tool: str = "arm-none-eabi-size") -> int | None:
    """Bytes of an object's sections that take RAM (.data, .bss: the arena and state)."""
    return _section_bytes(obj, _RAM, size_tool)


def _section_bytes(obj: Path, sections: re.Pattern, size_tool: str) -> int | None:
    if not obj.is_file() or shutil.which(size_tool) is None:
        return None
    r = subprocess.run([size_tool, "-A", str(obj)], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return sum(int(line.split()[1]) for line in r.stdout.splitlines() if sections.match(line))


def report(log: str, build_dir: Path) -> dict | None:
    """averages() plus the flash and RAM of model.o, of model_ee.o and the differences (the exit branches)."""
    found = averages(log)
    if found is None:
        return None
    objs = [Path(build_dir) / "model" / name for name in ("model.o", "model_ee.o")]
    base, ee = (object_flash(o) for o in objs)
    base_ram, ee_ram = (object_ram(o) for o in objs)
    found.update(model_flash_bytes=base, model_ee_flash_bytes=ee,
                 exit_branches_extra_flash_bytes=None if base is None or ee is None else ee - base,
                 model_ram_bytes=base_ram, model_ee_ram_bytes=ee_ram,
                 exit_branches_extra_ram_bytes=None if base_ram is None or ee_ram is None else ee_ram - base_ram)
    return found
