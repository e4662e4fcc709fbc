"""Output paths that cannot be written (issue 18 item 6): one line naming the path and the reason,
exit 2, and the previous export left exactly as it was.

The tests run as root, for whom a read-only folder is writable, so the failures are real ones
that root meets too (a path under a file, sysfs) or OSErrors raised in-process at the moment the
file system would raise them.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from dmxgen.backends import c as c_backend
from dmxgen.cli import main


def export(model, out, *more):
    return CliRunner().invoke(main, ["export", str(model), "-o", str(out), *map(str, more)])


def assert_one_line_error(r, *needles):
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    for n in needles:
        assert n in lines[0], (n, lines[0])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def previous(tmp_path, small_model):
    """A finished export in tmp_path/out and its contents, to check a failed export leaves it alone."""
    out = tmp_path / "out"
    r = export(small_model, out)
    assert r.exit_code == 0, r.output
    return out, snapshot(out)


def assert_intact(out: Path, before: dict[str, bytes]) -> None:
    assert snapshot(out) == before
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")] == []


def test_output_under_a_file(tmp_path, small_model):
    f = tmp_path / "notes.txt"
    f.write_text("not a folder\n")
    assert_one_line_error(export(small_model, f / "sub"), "notes.txt/sub", "is a file, not a folder")
    assert f.read_text() == "not a folder\n"


def test_output_is_an_existing_file(tmp_path, small_model):
    f = tmp_path / "out.c"
    f.write_text("int x;\n")
    assert_one_line_error(export(small_model, f), "out.c", "is a file")
    assert f.read_text() == "int x;\n"


def test_model_is_a_folder_is_one_line(tmp_path):
    d = tmp_path / "m.tflite"
    d.mkdir()
    assert_one_line_error(export(d, tmp_path / "out"), "m.tflite", "is a directory")


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="no sysfs here")
def test_output_on_a_file_system_that_refuses_writes(small_model):
    """sysfs refuses new folders even to root, like a read-only mount."""
    out = Path("/sys/kernel/dmxgen-test-out")
    assert_one_line_error(export(small_model, out), str(out), "cannot write the export")
    assert not out.exists()


def test_disk_full_while_writing_keeps_the_previous_export(previous, small_model, monkeypatch):
    out, before = previous
    real_write = c_backend.write

    def write_then_fill_the_disk(prepared, folder):
        real_write(prepared, folder)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "model.c"))

    monkeypatch.setattr(c_backend, "write", write_then_fill_the_disk)
    assert_one_line_error(export(small_model, out), str(out), "No space left on device")
    assert_intact(out, before)


@pytest.mark.parametrize("which", ["old", "new"])
def test_output_folder_that_cannot_be_renamed_keeps_the_previous_export(previous, small_model, monkeypatch,
                                                                         which):
    """`old`: OUT itself cannot be moved aside; `new`: the finished temporary folder cannot be
    moved into place (after OUT was moved aside, which must then be put back)."""
    out, before = previous
    real_rename = Path.rename

    def rename(self, target):
        moving = self == out if which == "old" else self.name.startswith(f".{out.name}.tmp-")
        if moving:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    from dmxgen.backends import c_files  # its one-step exchange fails alike: the two renames then run
    monkeypatch.setattr(c_files, "exchange", lambda a, b: False)
    assert_one_line_error(export(small_model, out), str(out), "Permission denied")
    monkeypatch.undo()
    assert_intact(out, before)


def test_parent_that_cannot_be_created(tmp_path, small_model, monkeypatch):
    """A read-only parent: mkdir raises PermissionError (for root too on a read-only mount)."""
    real_mkdir = Path.mkdir

    def mkdir(self, *a, **k):
        if self == tmp_path / "ro":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert_one_line_error(export(small_model, tmp_path / "ro" / "out"), "ro/out", "Permission denied")
    assert not (tmp_path / "ro").exists()

