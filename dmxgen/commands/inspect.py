"""`dmxgen inspect`: what is in a model, layer by layer (or, with --support, what dmxgen supports)."""
from __future__ import annotations

import click

from ..summary import layer_rows, totals
from .common import TRUST_PICKLE_HELP, custom_ops_option, echo_json, load_model, table


@click.command("inspect")
@click.argument("model", type=click.Path(dir_okay=False), required=False)
@custom_ops_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option("--formats", is_flag=True,
              help="Add, per weight tensor, its size as dense / CSR / dCSR / RLE and the format "
                   "`dmxgen export --format auto` stores it in.")
@click.option("--trust-pickle", is_flag=True, help=TRUST_PICKLE_HELP)
@click.option("--support", is_flag=True,
              help="Print which targets implement each op kind (reference, C, C + MVE, HLS, the TFLite "
                   "operators and PyTorch layers that map to it) instead of inspecting a model.")
def command(model, as_json, formats, trust_pickle, support):
    """Per-layer table of MODEL (.tflite or .pt): op, shapes, dtypes,
    quantization, weight count, sparsity (fraction of zeros) and bytes."""
    if support:
        _support(as_json)
        return
    if model is None:
        raise click.UsageError("missing argument MODEL (or pass --support)")
    graph = load_model(model, trust_pickle=trust_pickle)
    rows = layer_rows(graph)
    result = {"model": model, "inputs": _io(graph, graph.inputs), "outputs": _io(graph, graph.outputs),
              "layers": rows, "totals": totals(rows)}
    if formats:
        from dataclasses import asdict

        from ..codecs import policy, report
        from ..errors import DmxError

        try:
            chosen = policy.assign(graph, policy.EXPORT)  # the export's own choice, INT4 packing included
        except policy.PolicyError as e:
            raise DmxError(str(e)) from None
        fmt = report.format_table(
            [(op.name, op.kind, graph.weights(op).data) for op in graph.ops if graph.weights(op) is not None],
            chosen)
        result["formats"] = asdict(fmt)
    if as_json:
        echo_json(result)
        return
    click.echo(f"{model}: {len(rows)} ops; inputs {_io_str(result['inputs'])}; outputs {_io_str(result['outputs'])}")
    body = [[r["index"], r["name"], r["op"], " ".join(map(str, r["inputs"])), r["output"], r["dtype"], r["quant"],
             f"{r['params']:,}" if r["params"] else "-",
             f"{100 * r['sparsity']:.1f}%" if r["sparsity"] is not None else "-",
             f"{r['weight_bytes']:,}" if r["weight_bytes"] else "-"] for r in rows]
    header = ["#", "layer", "op", "input", "output", "dtype", "quant", "weights", "zeros", "bytes"]
    if any(r.get("stored", "dense") != "dense" for r in rows):  # a file written by `dmxgen compress`
        header.append("stored")
        for b, r in zip(body, rows):
            b.append(r.get("stored", "-"))
    click.echo(table(body, header))
    t = result["totals"]
    click.echo(f"total: {t['params']:,} weights, {100 * t['sparsity']:.1f}% zeros, {t['weight_bytes']:,} bytes as dense int8")
    if formats:
        click.echo("")
        click.echo(report.render_table(fmt))


def _support(as_json: bool) -> None:
    from .. import support

    if as_json:
        echo_json({"ops": support.matrix()})
        return
    click.echo(support.markdown(), nl=False)


def _io(graph, names):
    return [{"name": n, "shape": list(graph.tensors[n].shape), "dtype": graph.tensors[n].dtype} for n in names]


def _io_str(items):
    return ", ".join(f"{i['dtype']}{i['shape']}" for i in items)
