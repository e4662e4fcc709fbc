"""Progress bars (tqdm) for long loops, drawn on stderr only when a person is watching it.

A bar appears only when stderr is a terminal, so pipes, CI logs and captured
output never hold one, and stdout (which may carry --json) is never touched.
Library code calls `progress(...)` without deciding anything: the commands
turn bars on for their work with `with shown(not as_json): ...`, and outside
such a block (a library caller, a test) nothing is drawn, as before.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

_SHOWN: ContextVar[bool] = ContextVar("dmxgen_progress_shown", default=False)


@contextmanager
def shown(enabled: bool = True) -> Iterator[None]:
    """Within the block, `progress` draws bars (on a terminal) unless `enabled` is False (--json, --quiet)."""
    token = _SHOWN.set(bool(enabled))
    try:
        yield
    finally:
        _SHOWN.reset(token)


def bars_enabled(enabled: bool | None = None) -> bool:
    """Whether a bar would be drawn: `enabled` (None: the enclosing `shown` block decides) and a terminal stderr."""
    wanted = _SHOWN.get() if enabled is None else enabled
    return bool(wanted) and sys.stderr.isatty()


def progress(iterable: Iterable[T] | None = None, total: int | None = None, desc: str | None = None,
             enabled: bool | None = None, **kw):
    """`iterable` wrapped in a tqdm bar on stderr, or passed through unchanged when no bar is drawn.

    `kw` goes to tqdm (unit=, leave=). Without an iterable this returns a tqdm object to update by
    hand (disabled when no bar is drawn), for loops that are not a single iterable.
    """
    on = bars_enabled(enabled)
    if not on and iterable is not None:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=not on, dynamic_ncols=True, file=sys.stderr, **kw)
