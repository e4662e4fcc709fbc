"""Where the firmware puts the arena and the weights (ARENA=, WEIGHTS=, auto by default), on
the tiny fixture grown past DTCM or QSPI and on exported models that outgrow them: they run
from ISRAM/SRAM/DDR, and what does not fit stops the link with the linker script's own line."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from _big_models import (BIG_ARENA_BYTES, BIG_FC_BIAS_BYTES, BIG_FC_WEIGHT_BYTES, big_arena_model, big_fc_model,
                         export_cli)
from _fw_harness import TINY, copy_model, firmware_marks, make, tiny_numpy_output

from dmxgen import corstone300 as c3
from dmxgen import firmware

pytestmark = firmware_marks
MIB = 1 << 20
TINY_WEIGHT_BYTES = 16 * 64 + 16 * 4 + 8 * 16 + 8 * 4  # fixtures/tiny/headers/weights.h


def region_of(elf, symbol: str) -> str:
    nm = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True).stdout
    address = int(re.search(rf"^([0-9a-f]+) \S {symbol}$", nm, re.M).group(1), 16)
    return next(r.name for r in c3.REGIONS.values() if r.origin <= address < r.origin + r.size)


def section_size(elf, name: str) -> int:
    out = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True).stdout
    return int(re.search(rf"^{re.escape(name)}\s+(\d+)\s", out, re.M).group(1))


def link_errors(r: subprocess.CompletedProcess) -> list[str]:
    """What make printed on stderr, less its own `make: *** ... Error` trailer (`make[1]: ***` when the
    tests themselves run under make, as `make test` does)."""
    return [ln for ln in r.stderr.splitlines() if ln.strip() and not re.match(r"make(\[\d+\])?: \*\*\*", ln)]


@pytest.mark.parametrize("arena_bytes,arena,region", [
    (600_000, "", "ISRAM"),  # auto: past DTCM
    (5_000_000, "", "DDR"),  # auto: past ISRAM
    (16, "sram", "SRAM"),
])
def test_tiny_arena_runs_where_it_is_placed(tmp_path, arena_bytes, arena, region):
    r = firmware.run(TINY, build_dir=tmp_path / "b", arena=arena, extra_cflags=f"-DTINY_ARENA_SIZE={arena_bytes}",
                     timeout=120)
    assert r.passed, r.log
    assert np.array_equal(np.array(r.outputs), tiny_numpy_output())
    assert r.arena_region == region and r.weights_region == "QSPI"
    assert region_of(tmp_path / "b" / "firmware.elf", "dmx_arena") == region


def test_tiny_weights_beyond_qspi_run_from_ddr(tmp_path):
    """9 MiB more weights: auto puts them in DDR, QEMU's loader writes them there, the model reads them back."""
    r = firmware.run(TINY, build_dir=tmp_path / "b", extra_cflags=f"-DTINY_BALLAST_BYTES={9 * MIB}", timeout=120)
    assert r.passed, r.log  # main.c compares with expected.h: a ballast byte that was not loaded changes out[0]
    assert r.weights_region == "DDR" and r.arena_region == "DTCM"
    elf = tmp_path / "b" / "firmware.elf"
    assert region_of(elf, "tiny_ballast") == region_of(elf, "tiny_fc1_weights") == "DDR"
    sizes = firmware.size(TINY, build_dir=tmp_path / "b", extra_cflags=f"-DTINY_BALLAST_BYTES={9 * MIB}")
    assert sizes["weights_region"] == "DDR" and sizes["weights"] >= 9 * MIB + TINY_WEIGHT_BYTES
    assert sizes["flash"] < 1 * MIB  # the weights are not counted as flash any more


@pytest.mark.parametrize("cflags,variables,message", [
    ("-DTINY_ARENA_SIZE=600000", ["ARENA=dtcm"],
     "firmware: DTCM (512 KiB) is full: the arena (600,000 B), .data, .bss, a 16 KiB heap and the 64 KiB stack "
     "do not fit; build with ARENA=auto or ARENA=isram"),
    ("-DTINY_ARENA_SIZE=5000000", ["ARENA=isram"],
     "firmware: ISRAM (4 MiB) is full: the arena (5,000,000 B) does not fit; build with ARENA=auto or ARENA=ddr"),
    ("-DTINY_ARENA_SIZE=5000000", ["ARENA=sram"],
     "firmware: SRAM (2 MiB) is full: the arena (5,000,000 B) does not fit; build with ARENA=auto, ARENA=isram "
     "or ARENA=ddr"),
    (f"-DTINY_BALLAST_BYTES={9 * MIB}", ["WEIGHTS=qspi"],
     f"firmware: QSPI (8 MiB) is full: the weights and parameters ({9 * MIB + TINY_WEIGHT_BYTES:,} B) and the other "
     "constants do not fit; build with WEIGHTS=auto or WEIGHTS=ddr"),
    ("-DTINY_ARENA_SIZE=2147483000", ["WEIGHTS=ddr"],
     f"firmware: the model does not fit the Corstone-300: the arena (2,147,483,000 B) and the weights and "
     f"parameters ({TINY_WEIGHT_BYTES:,} B) exceed DDR (2 GiB), its largest memory"),
])
def test_what_does_not_fit_stops_the_link_with_one_clear_line(tmp_path, cflags, variables, message):
    build = tmp_path / "b"
    r = make("sim", f"MODEL={TINY}", f"BUILD={build}", f"EXTRA_CFLAGS={cflags}", *variables)
    assert r.returncode == 2
    assert link_errors(r) == [message]  # not "cannot move location counter backwards", not "region overflowed"
    assert not (build / "firmware.elf").exists()


# ---- exported models --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_arena(tmp_path_factory):
    d = tmp_path_factory.mktemp("big-arena")
    export_cli(big_arena_model(d / "big_arena.tflite"), d / "out")
    return d / "out"


def test_big_arena_model_passes_with_automatic_placement(big_arena):
    r = firmware.run(big_arena, timeout=300)
    assert r.passed and r.exit_status == 0, r.log
    assert (r.arena_region, r.weights_region) == ("ISRAM", "QSPI")
    assert region_of(big_arena / "build-cortex-m55" / "firmware.elf", "dmx_arena") == "ISRAM"
    assert section_size(big_arena / "build-cortex-m55" / "firmware.elf", ".arena") == BIG_ARENA_BYTES


def test_big_arena_model_in_dtcm_fails_with_the_linker_script_message(big_arena, tmp_path):
    r = make("sim", f"MODEL={big_arena}", f"BUILD={tmp_path / 'b'}", "ARENA=dtcm")
    assert r.returncode == 2
    assert link_errors(r) == [
        f"firmware: DTCM (512 KiB) is full: the arena ({BIG_ARENA_BYTES:,} B), .data, .bss, a 16 KiB heap and the "
        "64 KiB stack do not fit; build with ARENA=auto or ARENA=isram"]


def test_bench_arena_option(tmp_path, big_arena):
    cli = [sys.executable, "-m", "dmxgen.cli", "bench"]
    benched = copy_model(TINY, tmp_path / "tiny")  # bench stores its results in the folder: not in the repo
    tiny = [str(benched), "--arena", "isram", "--runs", "1", "--build-dir", str(tmp_path / "b")]
    r = subprocess.run(cli + tiny + ["--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["passed"] and (report["arena"], report["arena_region"]) == ("isram", "ISRAM")
    assert region_of(tmp_path / "b" / "firmware.elf", "dmx_arena") == "ISRAM"
    r = subprocess.run(cli + tiny, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "arena in ISRAM (--arena isram), weights in QSPI" in r.stdout, r.stderr

    r = subprocess.run(cli + [str(big_arena), "--arena", "dtcm", "--build-dir", str(tmp_path / "big")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "firmware: DTCM (512 KiB) is full: the arena" in r.stderr
    r = subprocess.run(cli + [str(TINY), "--arena", "itcm"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "'itcm' is not one of 'auto', 'dtcm', 'isram', 'sram', 'ddr'" in r.stderr


@pytest.fixture(scope="module")
def big_fc(tmp_path_factory):
    d = tmp_path_factory.mktemp("big-fc")
    r = export_cli(big_fc_model(d / "big_fc.tflite"), d / "out", "--format", "dense")
    return d / "out", r


@pytest.mark.slow  # 40 s: builds and runs a 2 MB-weights image
def test_big_weights_model_runs_from_ddr_and_export_said_so(big_fc, tmp_path):
    out, export = big_fc
    (note,) = export.stderr.splitlines()
    m = re.fullmatch(r"note: weights and parameters ([\d,]+) B exceed QSPI \(8 MiB\): firmware will place them in "
                     r"DDR \(2 GiB\)", note)
    assert m, note
    stored = int(m.group(1).replace(",", ""))
    assert BIG_FC_WEIGHT_BYTES + BIG_FC_BIAS_BYTES <= stored < BIG_FC_WEIGHT_BYTES + BIG_FC_BIAS_BYTES + 256

    r = firmware.run(out, timeout=600)
    assert r.passed, r.log
    assert (r.arena_region, r.weights_region) == ("DTCM", "DDR")
    elf = out / "build-cortex-m55" / "firmware.elf"
    assert abs(section_size(elf, ".weights") - stored) < 64  # what the export counted is what was linked

    # the same objects relinked with the weights forced into flash
    r = make("build", f"MODEL={out}", "WEIGHTS=qspi")
    assert r.returncode == 2
    (line,) = link_errors(r)
    assert re.fullmatch(r"firmware: QSPI \(8 MiB\) is full: the weights and parameters \([\d,]+ B\) and the other "
                        r"constants do not fit; build with WEIGHTS=auto or WEIGHTS=ddr", line), line
