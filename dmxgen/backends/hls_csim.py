"""Run the C simulation of an exported HLS folder through hls/Makefile.

One entry point for tests and commands, so that what they run is exactly what
a user runs: `make -C hls csim MODEL=OUT`.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..errors import DmxError

HARNESS = Path(__file__).resolve().parents[2] / "hls"


def run_csim(out_dir: Path, *, tool: str = "gcc", opt: str = "-O2", sanitize: bool = False,
             timeout: float = 900, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`make -C hls csim MODEL=out_dir`; returns the finished process (returncode 0 = bit-exact PASS).

    A testbench killed by a signal leaves "csim crashed: signal N (...)" in stderr (hls/run_tb.sh).
    """
    if shutil.which("make") is None:
        raise DmxError("HLS csim needs `make` on PATH")
    if not (HARNESS / "Makefile").is_file():
        raise DmxError(f"HLS harness {HARNESS / 'Makefile'} is missing (run from a dmxgen checkout)")
    cmd = ["make", "--no-print-directory", "-C", str(HARNESS), "csim", f"MODEL={Path(out_dir).resolve()}",
           f"TOOL={tool}", f"OPT={opt}", *(["SANITIZE=1"] if sanitize else []), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
