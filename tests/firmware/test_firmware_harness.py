"""The firmware harness on a tiny hand-written model (fixtures/tiny): QEMU start-up,
semihosting, exit status, linker script, and the instruction counter."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from _fw_harness import TINY, copy_model, corrupt_expected, firmware_marks, make, tiny_numpy_output

from dmxgen import firmware

pytestmark = firmware_marks
SPIN = 50000  # TINY_SPIN_ITERATIONS in fixtures/tiny/model.h: the spin layer is 2 * SPIN instructions


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny") / "build"


@pytest.fixture(scope="session")
def tiny_run(tiny_build):
    return firmware.run(TINY, build_dir=tiny_build, timeout=120)


def test_tiny_model_passes_and_prints_the_numpy_output(tiny_run):
    want = tiny_numpy_output()
    assert tiny_run.passed and tiny_run.exit_status == 0, tiny_run.log
    assert tiny_run.verdict == "PASS"
    assert np.array_equal(np.array(tiny_run.outputs), want)
    # expected.h, which the firmware compared against, is the numpy result too
    assert tiny_run.mismatches == []


def test_wrong_expected_output_fails_with_nonzero_exit(tmp_path, tiny_run):
    model = copy_model(TINY, tmp_path / "tiny")
    old, new = corrupt_expected(model, index=3)
    r = firmware.run(model, build_dir=tmp_path / "build", timeout=120)
    assert not r.passed
    assert r.exit_status == 1
    assert r.verdict == "FAIL 1 of 8 outputs differ from expected.h"
    assert r.mismatches == [(3, old, new)]
    assert r.outputs == tiny_run.outputs  # same computation, only the expectation changed
    # QEMU hands the firmware's exit status to the shell: run the ELF without make
    qemu = subprocess.run(["timeout", "60", "qemu-system-arm", "-M", "mps3-an547", "-cpu", "cortex-m55",
                           "-nographic", "-monitor", "none", "-serial", "none",
                           "-semihosting-config", "enable=on,target=native",
                           "-kernel", str(tmp_path / "build" / "firmware.elf")],
                          capture_output=True, text=True)
    assert qemu.returncode == 1, qemu.stderr
    assert qemu.stdout.splitlines()[-1].startswith("FAIL")
    m = make("sim", f"MODEL={model}", f"BUILD={tmp_path / 'build'}")
    assert m.returncode != 0 and "firmware: exit status 1" in m.stderr


def test_counts_are_identical_across_runs_and_builds(tmp_path, tiny_run, tiny_build):
    again = firmware.run(TINY, build_dir=tiny_build, timeout=120)
    rebuilt = firmware.run(TINY, build_dir=tmp_path / "fresh", timeout=120)
    assert [c.name for c in tiny_run.layers] == ["fc1", "spin", "fc2"]
    assert again.counts() == tiny_run.counts() == rebuilt.counts()
    assert again.total_ticks == tiny_run.total_ticks == rebuilt.total_ticks
    assert (tmp_path / "fresh" / "firmware.elf").read_bytes() == (tiny_build / "firmware.elf").read_bytes()


def test_counter_measures_instructions(tiny_run):
    """The spin layer is a subs/bne loop: exactly 2 instructions an iteration, plus a call."""
    spin = {c.name: c for c in tiny_run.layers}["spin"]
    assert 2 * SPIN <= spin.instructions <= 2 * SPIN + 8
    assert spin.instructions == firmware.ticks_to_instructions(spin.ticks)
    fc1, fc2 = ({c.name: c for c in tiny_run.layers}[n].instructions for n in ("fc1", "fc2"))
    # 1024 vs 128 multiply-accumulates: the counts scale with the work
    assert 4 < fc1 / fc2 < 10
    between_layers = tiny_run.total_instructions - sum(c.instructions for c in tiny_run.layers)
    assert 0 <= between_layers < 20 * len(tiny_run.layers)


def test_total_does_not_include_the_profiling_hooks(tmp_path, tiny_run):
    bare = firmware.run(TINY, build_dir=tmp_path / "bare", extra_cflags="-DDMX_NO_LAYER_PROFILE", timeout=60)
    assert bare.passed and bare.layers == []
    # calibration takes out the hooks' own cost; what is left is the calls perturbing the code around them
    assert abs(bare.total_instructions - tiny_run.total_instructions) <= 16 * len(tiny_run.layers)


def test_counter_survives_systick_wraps(tmp_path):
    """40M instructions: the 24-bit SysTick wraps twice; the count stays exact."""
    iterations = 20_000_000
    r = firmware.run(TINY, build_dir=tmp_path / "b", extra_cflags=f"-DTINY_SPIN_ITERATIONS={iterations}u",
                     timeout=120)
    assert r.passed, r.log
    spin = {c.name: c for c in r.layers}["spin"]
    # each wrap runs the SysTick handler (a few instructions) inside the layer
    assert 2 * iterations <= spin.instructions <= 2 * iterations + 30


def test_cpu_fault_ends_the_run_with_status_3(tmp_path):
    r = firmware.run(TINY, build_dir=tmp_path / "b", extra_cflags="-DTINY_FAULT", timeout=60)
    assert not r.passed
    assert r.exit_status == 3
    assert r.verdict == "FAIL cpu fault"
    assert re.search(r"^FAULT exc=0x00000005 ", r.log, re.M)  # BusFault, reported as such


@pytest.mark.parametrize("cpu,fpu", [("cortex-m4", "VFPv4-D16"), ("cortex-m7", "FPv5/FP-D16")])
def test_builds_for_other_cores_but_does_not_simulate_them(tmp_path, cpu, fpu):
    elf = firmware.build(TINY, cpu=cpu, build_dir=tmp_path / cpu)
    assert elf.is_file()
    attrs = subprocess.run(["arm-none-eabi-readelf", "-A", str(tmp_path / cpu / "model" / "kernels.o")],
                           capture_output=True, text=True).stdout
    assert 'Tag_CPU_name: "7E-M"' in attrs and f"Tag_FP_arch: {fpu}" in attrs, attrs
    assert "Tag_MVE_arch" not in attrs
    r = make("sim", f"MODEL={TINY}", f"BUILD={tmp_path / cpu}", f"CPU={cpu}")
    assert r.returncode != 0
    assert f"CPU={cpu} builds only" in r.stderr and "Cortex-M55" in r.stderr


def test_size_and_memory_placement(tmp_path, tiny_build, tiny_run):
    sizes = firmware.size(TINY, build_dir=tiny_build)
    weights = 16 * 64 + 16 * 4 + 8 * 16 + 8 * 4
    assert sizes["flash"] >= sizes["text"] >= weights
    assert sizes["arena"] == 16 and sizes["ram"] >= sizes["arena"]
    r = make("size", f"MODEL={TINY}", f"BUILD={tiny_build}")
    assert re.search(r"^\s*text\s+data\s+bss\s+dec\s+hex\s+filename$", r.stdout, re.M)
    assert re.search(r"^flash: \d+ bytes", r.stdout, re.M) and re.search(r"^ram: \d+ bytes", r.stdout, re.M)

    def where(elf, symbol):
        nm = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True).stdout
        return int(re.search(rf"^([0-9a-f]+) \S {symbol}$", nm, re.M).group(1), 16)

    elf = tiny_build / "firmware.elf"
    assert where(elf, "dmx_vectors") == 0x0  # ITCM: the reset vector table
    assert 0x28000000 <= where(elf, "tiny_fc1_weights") < 0x28800000  # QSPI flash
    assert 0x20000000 <= where(elf, "dmx_arena") < 0x20080000  # DTCM
    isram = firmware.build(TINY, build_dir=tmp_path / "isram", arena="isram")
    assert 0x21000000 <= where(isram, "dmx_arena") < 0x21400000
    assert firmware.run(TINY, build_dir=tmp_path / "isram", arena="isram", timeout=60).passed


@pytest.mark.parametrize("args,message", [
    ([], "MODEL is not set"),
    (["MODEL=/nonexistent/dmx"], "MODEL=/nonexistent/dmx: no such directory"),
    ([f"MODEL={firmware.FIRMWARE_DIR}"], "is not a folder written by dmxgen export: no model.h input.h expected.h"),
    ([f"MODEL={TINY}", "CPU=cortex-m3"], "CPU=cortex-m3 is not supported"),
    ([f"MODEL={TINY}", "ARENA=itcm"], "ARENA=itcm is not supported: use auto (default), dtcm, isram, sram or ddr"),
    ([f"MODEL={TINY}", "WEIGHTS=sram"], "WEIGHTS=sram is not supported: use auto (default), qspi or ddr"),
])
def test_make_rejects_bad_variables_in_one_line(args, message):
    r = make("sim", *args)
    assert r.returncode != 0
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_fvp_missing_says_so(tiny_build, tiny_run):
    path = "/usr/bin:/bin"
    if shutil.which("FVP_Corstone_SSE-300_Ethos-U55", path=path):
        pytest.skip("the FVP is installed here")
    r = make("sim", f"MODEL={TINY}", f"BUILD={tiny_build}", "SIM=fvp", PATH=path)
    assert r.returncode != 0
    assert "SIM=fvp needs FVP_Corstone_SSE-300_Ethos-U55 on PATH" in r.stderr


def test_bench_command_prints_the_table_and_checks_repeatability(tmp_path, tiny_build, tiny_run):
    cli = [sys.executable, "-m", "dmxgen.cli", "bench"]
    benched = copy_model(TINY, tmp_path / "tiny_ok")  # bench stores its results in the folder: not in the repo
    r = subprocess.run(cli + [str(benched), "--build-dir", str(tiny_build)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    ops = {"fc1": "fully_connected", "spin": "spin", "fc2": "fully_connected"}  # fixtures/tiny/manifest.json
    for c in tiny_run.layers:
        assert re.search(rf"^{c.index}\s+{c.name}\s+{ops[c.name]}\s+-\s+{c.instructions:,}\s", r.stdout, re.M), r.stdout
    assert f"{tiny_run.total_instructions:,}" in r.stdout and r.stdout.strip().endswith("PASS")
    assert (benched / "bench_m55.json").is_file()

    model = copy_model(TINY, tmp_path / "tiny")
    corrupt_expected(model)
    r = subprocess.run(cli + [str(model), "--runs", "1", "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert '"passed": false' in r.stdout

    r = subprocess.run(cli + [str(tmp_path / "missing")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no such directory" in r.stderr and "Traceback" not in r.stderr
