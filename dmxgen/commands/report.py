"""`dmxgen report`: one self-contained HTML page (or JSON) for an exported folder."""
from __future__ import annotations

import os
import webbrowser
from pathlib import Path

import click

from .common import echo_json


@click.command("report")
@click.argument("out", type=click.Path())
@click.option("-o", "--output", "html_path", type=click.Path(dir_okay=False), default=None,
              help="Where to write the page (default OUT/report.html).")
@click.option("--tflm", "tflm_file", type=click.Path(dir_okay=False), default=None,
              help="TFLite Micro figures written by tools/bench_tflm.py -o FILE: adds the per-layer comparison.")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@click.option("--json", "as_json", is_flag=True, help="Print the report's data as JSON instead of writing HTML.")
def command(out, html_path, tflm_file, open_browser, as_json):
    """Report on OUT (a folder written by `dmxgen export`): model summary, per-layer table
    (shapes, MACs, storage format, bytes, arena placement, Cortex-M55 instructions when
    `dmxgen bench OUT` has run), plots, the exits taken for an early-exit export, and the
    verification ladder. The page is one file
    with inline SVG: it opens offline and fetches nothing."""
    from ..report import gather, render_html

    data = gather(out, tflm_file)
    if as_json:
        echo_json(data)
        return
    target = Path(html_path) if html_path else Path(out) / "report.html"
    page = render_html(data)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, target)
    click.echo(f"{target}: report for {data['summary']['model']} ({len(data['layers'])} layers)")
    if open_browser:
        webbrowser.open(target.resolve().as_uri())
