"""`dmxgen report`: one self-contained HTML page (and the same data as JSON) for an exported folder.

data.gather() reads what the folder holds (manifest.json, bench results, verification records,
optionally TFLM figures from tools/bench_tflm.py; early_exit.py the exits an early-exit export
takes); plots.py draws it with matplotlib as inline SVG;
html.py writes the page. records.py is where other commands store their results for it.
"""
from __future__ import annotations

from .data import gather
from .macs import layer_macs
from .records import record_step, save_bench

__all__ = ["gather", "layer_macs", "record_step", "save_bench", "render_html"]


def render_html(data: dict) -> str:
    """The report page for gather()'s data (imports matplotlib only when called)."""
    from .html import render

    return render(data)
