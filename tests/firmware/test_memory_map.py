"""dmxgen/corstone300.py and firmware/an547.ld hold the same memory map and choose the same
memories for an arena and weights of a given size; `dmxgen export` says beforehand which
memories a model outgrows. No firmware build here: only the C preprocessor the Makefile runs."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
from _big_models import BIG_ARENA_BYTES, big_arena_model, export_cli

from dmxgen import corstone300 as c3
from dmxgen import firmware

LD = firmware.FIRMWARE_DIR / "an547.ld"
CPP = next((p for p in ("arm-none-eabi-gcc", "gcc") if shutil.which(p)), None)
needs_cpp = pytest.mark.skipif(CPP is None, reason="needs arm-none-eabi-gcc or gcc as the C preprocessor")


def ld_defines() -> dict[str, int]:
    return {m.group(1): int(m.group(2), 0)
            for m in re.finditer(r"^#define DMX_(\w+)\s+(0x[0-9a-fA-F]+|\d+)\b", LD.read_text(), re.M)}


def preprocess(*defines: str) -> str:
    """an547.ld as the Makefile's `$(CC) -E -P -undef -x c` turns it into."""
    r = subprocess.run([CPP, "-E", "-P", "-undef", "-x", "c", *defines, str(LD)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def placement(text: str) -> tuple[str, str]:
    found = dict(re.findall(r'^REGION_ALIAS\("(ARENA|WEIGHTS)", *(\w+)\);$', text, re.M))
    return found["ARENA"], found["WEIGHTS"]


def test_linker_script_and_python_hold_the_same_sizes():
    d = ld_defines()
    for r in c3.REGIONS.values():
        assert (d[f"{r.name}_ORIGIN"], d[f"{r.name}_SIZE"]) == (r.origin, r.size), r.name
    assert (d["STACK_SIZE"], d["HEAP_MIN"]) == (c3.STACK_SIZE, c3.HEAP_MIN)
    assert (d["DTCM_RESERVED"], d["QSPI_RESERVED"]) == (c3.DTCM_RESERVED, c3.QSPI_RESERVED)
    # the platform notes' map (QEMU mps3-an547 `info mtree`)
    assert {r.name: (r.origin, r.size) for r in c3.REGIONS.values()} == {
        "ITCM": (0x0, 512 << 10), "SRAM": (0x01000000, 2 << 20), "DTCM": (0x20000000, 512 << 10),
        "ISRAM": (0x21000000, 4 << 20), "QSPI": (0x28000000, 8 << 20), "DDR": (0x60000000, 2 << 30)}


@needs_cpp
def test_memory_block_uses_those_sizes():
    memory = re.search(r"MEMORY\s*\{(.*?)\}", preprocess(), re.S).group(1)
    got = {m.group(1): (int(m.group(2), 0), int(m.group(3), 0))
           for m in re.finditer(r"(\w+) \(\w+\) : ORIGIN = (\w+), LENGTH = (\w+)", memory)}
    assert got == {r.name: (r.origin, r.size) for r in c3.REGIONS.values()}


def test_linker_messages_name_the_sizes_the_script_uses():
    messages = re.findall(r'"(firmware: [^"]*)"', LD.read_text())
    assert len(messages) >= 8
    for text in messages:
        for name, size in re.findall(r"\b([A-Z]+) \((\d+ [KMG]iB)\)", text):
            assert c3.REGIONS[name].label == f"{name} ({size})", text
    heap, stack = f"a {c3.HEAP_MIN >> 10} KiB heap", f"the {c3.STACK_SIZE >> 10} KiB stack"
    assert all(heap in m and stack in m for m in messages if m.startswith("firmware: DTCM"))


def test_makefile_offers_the_same_choices_as_bench():
    text = (firmware.FIRMWARE_DIR / "Makefile").read_text()
    arena = re.search(r"\$\(filter ([a-z ]+),\$\(ARENA\)\)", text).group(1).split()
    weights = re.search(r"\$\(filter ([a-z ]+),\$\(WEIGHTS\)\)", text).group(1).split()
    assert tuple(arena) == c3.ARENA_CHOICES and tuple(weights) == c3.WEIGHTS_CHOICES
    assert re.search(r"^ARENA +\?= auto$", text, re.M) and re.search(r"^WEIGHTS +\?= auto$", text, re.M)


MAX = c3.DTCM_ARENA_MAX
QMAX = c3.QSPI_WEIGHTS_MAX


@needs_cpp
@pytest.mark.parametrize("arena,output,weights", [
    (0, 0, 0), (16, 8, 1248), (MAX, 0, QMAX), (MAX + 1, 0, QMAX + 1), (MAX - 1000, 1000, 0), (MAX - 1000, 1001, 0),
    (512 << 10, 0, 8 << 20), (4 << 20, 0, 0), ((4 << 20) + 1, 0, 0), (2**31 - 1, 0, 2**31 - 1),
])
def test_automatic_choice_is_the_same_in_python_and_the_linker_script(arena, output, weights):
    text = preprocess(f"-DDMX_ARENA_BYTES={arena}", f"-DDMX_OUTPUT_BYTES={output}", f"-DDMX_WEIGHT_BYTES={weights}")
    assert placement(text) == (c3.arena_region(arena, output).name, c3.weights_region(weights).name)


@needs_cpp
def test_explicit_choices_override_the_sizes():
    for choice in c3.ARENA_CHOICES[1:]:
        text = preprocess(f"-DDMX_ARENA_{choice.upper()}", "-DDMX_WEIGHTS_DDR", "-DDMX_ARENA_BYTES=16")
        assert placement(text) == (choice.upper(), "DDR")
    assert placement(preprocess("-DDMX_WEIGHTS_QSPI", f"-DDMX_WEIGHT_BYTES={9 << 20}"))[1] == "QSPI"


def test_fit_notes_give_the_numbers():
    assert c3.fit_notes(138_016, 1_000_000, 12) == []
    assert c3.fit_notes(1_204_224, 0) == [
        "note: arena 1,204,224 B exceeds DTCM (512 KiB): firmware will place it in ISRAM (4 MiB)"]
    assert c3.fit_notes(420_000, 0, 10_000) == [
        "note: arena 420,000 B does not fit DTCM (512 KiB) beside the output buffer (10,000 B), the stack (64 KiB), "
        "heap (16 KiB) and 16 KiB kept for .data and .bss: firmware will place it in ISRAM (4 MiB)"]
    assert c3.fit_notes(5_000_000, 9_437_184) == [
        "note: arena 5,000,000 B exceeds DTCM (512 KiB), ISRAM (4 MiB) and SRAM (2 MiB): firmware will place it "
        "in DDR (2 GiB)",
        "note: weights and parameters 9,437,184 B exceed QSPI (8 MiB): firmware will place them in DDR (2 GiB)"]
    notes = c3.fit_notes(2_000_000_000, 200_000_000)
    assert notes[-1] == ("note: the model does not fit the Corstone-300: arena and weights (2,200,000,000 B) "
                         "exceed DDR (2 GiB), its largest memory; `make -C firmware sim` will stop")


@pytest.fixture(scope="module")
def big_arena_tflite(tmp_path_factory):
    return big_arena_model(tmp_path_factory.mktemp("big-arena") / "big_arena.tflite")


def test_export_says_where_a_big_arena_will_go(tmp_path, big_arena_tflite):
    r = export_cli(big_arena_tflite, tmp_path / "out")
    note = f"note: arena {BIG_ARENA_BYTES:,} B exceeds DTCM (512 KiB): firmware will place it in ISRAM (4 MiB)"
    assert r.stderr.splitlines() == [note]
    assert "note:" not in r.stdout
    r = export_cli(big_arena_tflite, tmp_path / "json", "--json")
    assert json.loads(r.stdout)["arena_size"] == BIG_ARENA_BYTES and r.stderr.splitlines() == [note]


def test_export_of_a_model_that_fits_prints_no_note(tmp_path, small_model):
    r = subprocess.run([sys.executable, "-m", "dmxgen.cli", "export", str(small_model), "-o", str(tmp_path / "o"),
                        "--vectors", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "note:" not in r.stdout + r.stderr, r.stderr
