"""`dmxgen compress`: store encoded sparse weights inside a .tflite file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from ..codecs import policy as storage
from ..errors import DmxError
from .common import table


@click.command("compress")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .tflite file to write.")
@click.option("--format", "fmt", type=click.Choice(["dcsr", "csr", "rle"]), default=storage.COMPRESS.fmt,
              show_default=True)
@click.option("--select", type=click.Choice(["paper", "sparse"]), default="paper", show_default=True,
              help="paper: FULLY_CONNECTED and 1x1 CONV_2D with >= 70% zeros (the dCSR paper's rule); "
                   "sparse: any CONV_2D/FULLY_CONNECTED with at least --min-sparsity zeros.")
@click.option("--min-sparsity", default=storage.COMPRESS.min_sparsity, show_default=True, type=click.FloatRange(0, 1))
@click.option("--strip-dense", is_flag=True,
              help="Empty the original dense buffers: a smaller file that only dmxgen can run.")
def command(model, output, fmt, select, min_sparsity, strip_dense):
    """Encode the selected weight tensors of MODEL and store the arrays as
    metadata buffers of OUTPUT. Ordinary TFLite parsers still open OUTPUT;
    `dmxgen inspect` and `dmxgen export` read the encoded weights back, and
    `dmxgen export --format auto` keeps them (codecs/policy.py)."""
    from ..frontends.tflite import load_tflite
    from ..frontends.tflite_packed import pack

    src, dst = Path(model), Path(output)
    if not src.exists():
        raise DmxError(f"{src}: no such file")
    if dst.resolve() == src.resolve():
        raise DmxError(f"{dst}: refusing to overwrite the input model; choose another -o")
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".dmxgen-", suffix=".tflite", dir=dst.parent)
    os.close(fd)
    try:
        rows = pack(src, Path(tmp), fmt=fmt, select=select, min_sparsity=min_sparsity, strip_dense=strip_dense)
        load_tflite(tmp)  # what we wrote must load back
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if not rows:
        click.echo(f"{src}: no weight tensor matched --select {select}; {dst} holds the model unchanged")
        return
    body = [[r["tensor"][:48], r["op"], "x".join(map(str, r["shape"])), f"{100 * r['sparsity']:.1f}%",
             r["dense"], r["encoded"], f"{r['dense'] / r['encoded']:.2f}x"] for r in rows]
    click.echo(table(body, ["tensor", "op", "shape", "zeros", "dense B", f"{fmt} B", "ratio"]))
    dense, enc = sum(r["dense"] for r in rows), sum(r["encoded"] for r in rows)
    click.echo(f"{len(rows)} tensors: {dense:,} B dense -> {enc:,} B {fmt} ({dense / enc:.2f}x); "
               f"file {src.stat().st_size:,} B -> {dst.stat().st_size:,} B")
