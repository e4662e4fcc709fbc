"""Helpers shared by the commands: loading models, printing tables (test inputs: dmxgen/vectors.py)."""
from __future__ import annotations

import json

import click
import numpy as np

from ..pipeline import load_model  # noqa: F401  (the commands' one way to load a model)


TRUST_PICKLE_HELP = ("Load a pickled PyTorch checkpoint (torch.save of a dmxgen.Model). Unpickling can run "
                     "arbitrary code, so only use it for files you made yourself.")


def _load_custom_ops(ctx, param, paths):
    if paths:
        from ..custom import load_plugins

        load_plugins(paths)
    return paths


# `--custom-ops plugin.py`: the user's kernels for TFLite CUSTOM operators, loaded before the model is read
custom_ops_option = click.option(
    "--custom-ops", multiple=True, type=click.Path(dir_okay=False), expose_value=False, is_eager=True,
    callback=_load_custom_ops, metavar="PLUGIN.py",
    help="A Python file registering kernels for the model's CUSTOM operators (a numpy reference and a C "
         "file each, docs/custom-ops.md). It runs as code: only load files you trust. Repeatable.")


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=_jsonable))


def _jsonable(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(type(o))


def table(rows: list[list], header: list[str]) -> str:
    """Plain aligned text table (numbers right-aligned)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(_isnum(r[i]) for r in cells[1:]) and rows for i in range(len(header))]
    lines = []
    for k, r in enumerate(cells):
        parts = [c.rjust(w) if numeric[i] and k else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(parts).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _isnum(s: str) -> bool:
    try:
        float(s.replace(",", "").rstrip("%x"))
        return True
    except ValueError:
        return s in ("-", "")
