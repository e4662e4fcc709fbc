"""Write an output folder all at once: a temporary sibling renamed into place.

A failed export must leave no partial OUT, and must never destroy a folder
that dmxgen did not write.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DmxError


def check_target(out: Path, marker: str) -> None:
    """OUT may be absent, an empty folder, or a previous export (holding `marker`)."""
    above = next((p for p in out.parents if p.exists() or p.is_symlink()), None)
    if above is not None and not above.is_dir():
        raise DmxError(f"{out}: {above} is a file, not a folder; choose another output path")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise DmxError(f"{out}: exists and is not a folder; choose another output path")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise DmxError(f"{out}: folder exists and is not a dmxgen export (no {marker}); "
                       "refusing to overwrite it")


STALE_KINDS = ("tmp", "hls", "old")  # .OUT.hls-* came from exports that built hls/ in a folder of its own


def remove_stale(out: Path) -> None:
    """Hidden siblings `.OUT.tmp-*`, `.OUT.hls-*`, `.OUT.old-*` that an export of OUT killed
    mid-way left behind (a finished export removes its own)."""
    for kind in STALE_KINDS:
        for p in out.parent.glob(f".{glob_escape(out.name)}.{kind}-*"):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


@contextmanager
def atomic_folder(out: Path, marker: str) -> Iterator[Path]:
    """Yield a temporary folder beside `out`; on success it replaces `out`, on error it is removed.

    A file-system error (no such folder, permission, read-only or full disk) becomes one DmxError
    naming the path, with the previous `out` left as it was."""
    out = Path(out)
    try:
        with _replacing(out, marker) as tmp:
            yield tmp
    except OSError as e:
        raise DmxError(f"{out}: cannot write the export: {os_reason(e)}") from None


def os_reason(e: OSError) -> str:
    """strerror and the path it is about (the output folder, its parent or a temporary sibling)."""
    reason = e.strerror or type(e).__name__
    return f"{reason} ({e.filename})" if e.filename else reason


def exchange(a: Path, b: Path) -> bool:
    """Swap two folders atomically (Linux renameat2 RENAME_EXCHANGE); False where that is missing."""
    import ctypes
    import os

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except AttributeError:  # not glibc >= 2.28
        return False
    at_fdcwd, rename_exchange = -100, 2
    # nonzero on a file system without it: the caller then renames twice
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


@contextmanager
def _replacing(out: Path, marker: str) -> Iterator[Path]:
    check_target(out, marker)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        tmp.chmod(0o755)
        if out.exists() and exchange(tmp, out):  # one step: OUT is never absent, even under SIGKILL
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the previous export
            return
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            old.rmdir()
            out.rename(old)
        try:
            tmp.rename(out)
        except OSError:
            if old is not None:
                old.rename(out)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
