"""C identifiers and comment text from arbitrary model names.

TFLite and PyTorch names hold '/', ';', ':', '.', spaces, unicode, and may
collide once cleaned. Every generated symbol is built from an identifier
given out here: lower_snake_case, never containing "__" (so that templates
can use "__" to join a layer and one of its arrays without collisions), never
empty, at most MAX_LEN characters, unique within one Namer.
"""
from __future__ import annotations

import hashlib
import re

MAX_LEN = 40
_BAD = re.compile(r"[^a-z0-9]+")


def c_ident(name: str) -> str:
    """A lower_snake_case identifier fragment for `name` (not necessarily unique)."""
    s = _BAD.sub("_", name.lower()).strip("_")
    if not s:
        s = "x"
    if s[0].isdigit():
        s = "n" + s
    if len(s) > MAX_LEN:
        digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:6]
        s = s[: MAX_LEN - 7].rstrip("_") + "_" + digest
    return s


class Namer:
    """Hands out a new unique identifier per call (even for a repeated name), in call
    order, so the result is deterministic."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, name: str) -> str:
        base = c_ident(name)
        ident, k = base, 2
        while ident in self.used:
            ident, k = f"{base}_{k}", k + 1
        self.used.add(ident)
        return ident


def c_comment(text: str, limit: int = 100) -> str:
    """Text that is safe inside /* */ on one line: printable ASCII without '*/', '?'
    (trigraphs) or '\\' (line splices)."""
    s = "".join(ch if 32 <= ord(ch) < 127 and ch not in "?\\" else "_" for ch in str(text))
    s = s.replace("*/", "*_/").replace("/*", "/_*")
    if len(s) > limit:
        s = s[: limit - 3] + "..."
    return s
