"""Progress bars: drawn on a terminal stderr, never with --json, off a terminal or for library callers.

The CLI runs in a subprocess whose stderr is the slave end of a pseudo-terminal
(what a person at a shell has), or a plain pipe (CI, `2>log`). tqdm draws with
carriage returns and `NN%|`, so those bytes on stderr mean a bar was drawn.
"""
from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

from dmxgen.progress import progress, shown

BAR = b"%|"


def run(args: list[str], *, tty: bool, code: str | None = None) -> tuple[int, bytes, bytes]:
    """Run `dmxgen ARGS` (or `python -c CODE`) with stderr on a pseudo-terminal or a pipe: (rc, stdout, stderr)."""
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "dmxgen.cli", *args]
    if not tty:
        r = subprocess.run(cmd, capture_output=True, timeout=300)
        return r.returncode, r.stdout, r.stderr
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks: list[bytes] = []

    def drain():  # read the terminal while the child writes, so it never blocks on a full pty
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    out = proc.stdout.read()
    rc = proc.wait(timeout=300)
    reader.join(timeout=30)
    os.close(master)
    return rc, out, b"".join(chunks)


@pytest.fixture
def model(small_model) -> Path:
    return small_model


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_export_on_a_terminal_draws_a_bar_and_writes_the_same_folder(model, tmp_path):
    rc, out, err = run(["export", str(model), "-o", str(tmp_path / "tty"), "--vectors", "20"], tty=True)
    assert rc == 0, err
    assert BAR in err and b"\r" in err and b"test vectors" in err
    assert BAR not in out  # the table on stdout stays clean
    rc, _, plain = run(["export", str(model), "-o", str(tmp_path / "pipe"), "--vectors", "20"], tty=False)
    assert rc == 0, plain
    assert folder_bytes(tmp_path / "tty") == folder_bytes(tmp_path / "pipe")  # the bar went to stderr only


def test_export_json_on_a_terminal_draws_no_bar(model, tmp_path):
    rc, out, err = run(["export", str(model), "-o", str(tmp_path / "o"), "--vectors", "20", "--json"], tty=True)
    assert rc == 0, err
    assert BAR not in err and b"\r" not in err
    assert json.loads(out)["layers"]


def test_export_with_stderr_a_pipe_draws_no_bar(model, tmp_path):
    rc, _, err = run(["export", str(model), "-o", str(tmp_path / "o"), "--vectors", "20"], tty=False)
    assert rc == 0, err
    assert BAR not in err and b"\r" not in err


def test_verify_tflite_on_a_terminal_draws_a_bar_but_not_with_json(model):
    rc, out, err = run(["verify", str(model), "--inputs", "20"], tty=True)
    assert rc == 0, err
    assert BAR in err and b"verify" in err and b"BIT-EXACT" in out
    rc, out, err = run(["verify", str(model), "--inputs", "20", "--json"], tty=True)
    assert rc == 0, err
    assert BAR not in err and json.loads(out)["bit_exact"] is True


def test_library_export_draws_no_bar_even_on_a_terminal(model, tmp_path):
    code = (f"from dmxgen.targets import export; export({str(model)!r}, {str(tmp_path / 'o')!r}, "
            f"source={str(model)!r}, n_vectors=20)")
    rc, _, err = run([], tty=True, code=code)
    assert rc == 0, err
    assert BAR not in err
    assert (tmp_path / "o" / "manifest.json").is_file()


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_passes_the_iterable_through_unless_shown_on_a_terminal(monkeypatch):
    items = [1, 2, 3]
    assert progress(items) is items  # not in a `shown` block: a library caller
    with shown(True):
        assert progress(items) is items  # pytest's stderr is not a terminal
    term = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert progress(items) is items
    with shown(False):  # --json
        assert progress(items) is items
    assert progress(items, enabled=False) is items
    assert term.getvalue() == ""
    with shown(True):
        assert list(progress(items, desc="work")) == items
    assert "work" in term.getvalue() and "%|" in term.getvalue()
    assert progress(items) is items  # the block ended: off again


def test_compress_to_size_bars_follow_its_log_argument_on_a_terminal(monkeypatch):
    pytest.importorskip("torch")
    from dmxgen.compress.sparsecomp import _Log

    term = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert list(_Log(False, main=True).bar(range(3), desc="quiet")) == [0, 1, 2]  # log=False: silent
    assert list(_Log(None, main=False).bar(range(3), desc="rank1")) == [0, 1, 2]  # only rank 0 draws
    assert term.getvalue() == ""
    assert list(_Log(None, main=True).bar(range(3), desc="epochs")) == [0, 1, 2]  # a library call, as before
    assert "epochs" in term.getvalue() and "%|" in term.getvalue()
