"""Reading the harness's records (no toolchain needed)."""
from __future__ import annotations

from dmxgen import firmware

LOG = """\
  CC      model.c
DMX cpu=cortex-m55 layers=3 inputs=4 outputs=3 output_type=float32
COUNTER systick overhead=31 ticks_per_kinsn=1024
LAYER 0 model/conv 2d;1 4520 4414
LAYER 2 fc 708 691
TOTAL 5300 5176
OUTPUT 0 -1 0.5 -0
MISMATCH 1 got 0.5 expected 0.25
FAIL 1 of 3 outputs differ from expected.h
"""


def test_parse_reads_every_record():
    r = firmware.parse(LOG)
    assert r.cpu == "cortex-m55" and r.overhead_ticks == 31 and r.output_type == "float32"
    assert r.layers == [firmware.LayerCount(0, "model/conv 2d;1", 4520, 4414), firmware.LayerCount(2, "fc", 708, 691)]
    assert (r.total_ticks, r.total_instructions) == (5300, 5176)
    assert r.outputs == [-1, 0.5, 0.0] and str(r.outputs[2]) == "-0.0"
    assert r.mismatches == [(1, "0.5", "0.25")]
    assert not r.passed and r.verdict.startswith("FAIL")
    assert firmware.parse(LOG.replace("FAIL 1 of 3 outputs differ from expected.h", "PASS")).passed


def test_ticks_to_instructions_matches_the_firmware_rounding():
    # pairs printed by the firmware on LAYER lines
    for ticks, insn in [(4520, 4414), (102405, 100005), (708, 691), (20480010, 20000010)]:
        assert firmware.ticks_to_instructions(ticks) == insn


def test_parse_size():
    text = ("   text\t   data\t    bss\t    dec\t    hex\tfilename\n"
            "  33356\t   2500\t 521792\t 557648\t  88250\t/x/firmware.elf\n"
            "flash: 35856 bytes (code, weights and constants, .data image)\n"
            "ram: 2848 bytes (.data + .bss, of which arena 16)\n")
    assert firmware.parse_size(text) == {"text": 33356, "data": 2500, "bss": 521792, "flash": 35856, "ram": 2848,
                                         "arena": 16}
