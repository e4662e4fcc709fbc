"""The Corstone-300 (MPS3 AN547) memories and where the firmware puts a model's arena and
weights in them: the numbers and rules of firmware/an547.ld, so that `dmxgen export` can
say beforehand what `make sim` will do (tests/firmware/test_memory_map.py checks they agree)."""
from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


@dataclass(frozen=True)
class Region:
    name: str
    origin: int
    size: int

    @property
    def label(self) -> str:
        """"DTCM (512 KiB)", as the linker script's messages write it."""
        return f"{self.name} ({_binary(self.size)})"


ITCM = Region("ITCM", 0x00000000, 512 * KIB)
SRAM = Region("SRAM", 0x01000000, 2 * MIB)
DTCM = Region("DTCM", 0x20000000, 512 * KIB)
ISRAM = Region("ISRAM", 0x21000000, 4 * MIB)
QSPI = Region("QSPI", 0x28000000, 8 * MIB)
DDR = Region("DDR", 0x60000000, 2 * GIB)
REGIONS = {r.name: r for r in (ITCM, SRAM, DTCM, ISRAM, QSPI, DDR)}

STACK_SIZE = 64 * KIB  # at the top of DTCM
HEAP_MIN = 16 * KIB  # newlib's stdio buffers
# What the automatic choice leaves free: in DTCM for the rest of .data and .bss (the harness,
# newlib), in QSPI for the other constants (input.h, expected.h, the .data image).
DTCM_RESERVED = 16 * KIB
QSPI_RESERVED = 512 * KIB
# The arena and the harness's output buffer share this much of DTCM.
DTCM_ARENA_MAX = DTCM.size - STACK_SIZE - HEAP_MIN - DTCM_RESERVED
QSPI_WEIGHTS_MAX = QSPI.size - QSPI_RESERVED

# `make sim ARENA=...` / `WEIGHTS=...` and `dmxgen bench --arena`: auto first, the default.
ARENA_CHOICES = ("auto", "dtcm", "isram", "sram", "ddr")
WEIGHTS_CHOICES = ("auto", "qspi", "ddr")


def arena_region(arena_bytes: int, output_bytes: int = 0) -> Region:
    """Where ARENA=auto puts an arena of that size: DTCM when it fits there beside the
    output buffer (output_bytes, also in DTCM), else ISRAM, else DDR."""
    if arena_bytes + output_bytes <= DTCM_ARENA_MAX:
        return DTCM
    return ISRAM if arena_bytes <= ISRAM.size else DDR


def weights_region(weight_bytes: int) -> Region:
    """Where WEIGHTS=auto puts the weights and parameters (.dmx_weights): QSPI flash, else DDR."""
    return QSPI if weight_bytes <= QSPI_WEIGHTS_MAX else DDR


def manifest_notes(manifest: dict) -> list[str]:
    """fit_notes() for an exported folder's manifest.json."""
    weights = int(manifest.get("weight_bytes", 0)) + int(manifest.get("param_bytes", 0))  # all of .dmx_weights
    return fit_notes(int(manifest["arena_size"]), weights, int(manifest.get("io_bytes", {}).get("output", 0)))


def fit_notes(arena_bytes: int, weight_bytes: int, output_bytes: int = 0) -> list[str]:
    """One line per memory the model outgrows on the Corstone-300, with the numbers; [] when all fits."""
    notes = []
    arena, weights = arena_region(arena_bytes, output_bytes), weights_region(weight_bytes)
    if arena is not DTCM:
        beside = ((f"the output buffer ({output_bytes:,} B), " if output_bytes else "")
                  + f"the stack ({_binary(STACK_SIZE)}), heap ({_binary(HEAP_MIN)}) and "
                  f"{_binary(DTCM_RESERVED)} kept for .data and .bss")
        outgrown = (_outgrows(arena_bytes, DTCM, beside) if arena is ISRAM
                    else f"exceeds {DTCM.label}, {ISRAM.label} and {SRAM.label}")
        notes.append(f"note: arena {arena_bytes:,} B {outgrown}: firmware will place it in {arena.label}")
    if weights is not QSPI:
        outgrown = _outgrows(weight_bytes, QSPI, f"the {_binary(QSPI_RESERVED)} kept for the other constants",
                             plural=True)
        notes.append(f"note: weights and parameters {weight_bytes:,} B {outgrown}: firmware will place them in "
                     f"{weights.label}")
    in_ddr = (arena_bytes if arena is DDR else 0) + (weight_bytes if weights is DDR else 0)
    if in_ddr > DDR.size:
        notes.append(f"note: the model does not fit the Corstone-300: arena and weights ({in_ddr:,} B) exceed "
                     f"{DDR.label}, its largest memory; `make -C firmware sim` will stop")
    return notes


def _outgrows(n: int, region: Region, beside: str, plural: bool = False) -> str:
    if n > region.size:
        return f"exceed{'' if plural else 's'} {region.label}"
    return f"do{'' if plural else 'es'} not fit {region.label} beside {beside}"


def _binary(n: int) -> str:
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n:,} B"
