"""`dmxgen export`: a model -> a self-contained C folder (docs/exported-folder.md)."""
from __future__ import annotations

from pathlib import Path

import click

from ..codecs import policy as storage
from ..errors import DmxError
from ..progress import shown
from ..targets import TARGETS
from .common import TRUST_PICKLE_HELP, custom_ops_option, echo_json, table


def parse_targets(values: tuple[str, ...]) -> list[str]:
    """`--target c --target hls` or `--target c,hls` -> ["c", "hls"] (default: c)."""
    names = [v.strip() for value in values for v in value.split(",") if v.strip()] or ["c"]
    bad = [n for n in names if n not in TARGETS]
    if bad:
        raise DmxError(f"unknown --target {bad[0]!r}; choose from {', '.join(TARGETS)}")
    return [t for t in TARGETS if t in names]


@click.command("export")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False),
              help="Output folder (created; a previous export there is replaced).")
@click.option("--format", "fmt", type=click.Choice(list(storage.FORMATS)), default=storage.EXPORT.fmt,
              show_default=True, help="Weight storage: csr/dcsr/dcsr_gather (dCSR with gather offsets, C only) "
              "apply to fully connected and conv layers with enough zeros (see --min-sparsity); auto takes "
              "the smallest format per layer, or keeps the one `dmxgen compress` stored in the file, and "
              "with --weight-budget spends the bytes left on faster formats.")
@click.option("--weight-budget", type=click.IntRange(min=0), default=None, metavar="BYTES",
              help="The most bytes the weight arrays may take (C target). With --format auto the layers "
              "start in their smallest formats and move, most instructions saved per byte first, to "
              "formats the M55 cost model says run faster while the total fits (docs/formats-dcsr-gather.md"
              "#cost-model); the reason is each layer's format_reason in manifest.json. Over it even "
              "in the smallest formats: exit 2.")
@click.option("--min-sparsity", default=storage.EXPORT.min_sparsity, show_default=True,
              type=click.FloatRange(0.0, 1.0),
              help="With --format csr/dcsr, layers with fewer zeros than this stay dense.")
@click.option("--semantics", type=click.Choice(["tflite", "tflm"]), default="tflite", show_default=True,
              help="tflite: TFLite's reference kernels (float-table softmax, single-rounding FC); "
                   "tflm: TFLite Micro's integer-only arithmetic (docs/goldens.md).")
@click.option("--input", "input_files", multiple=True, type=click.Path(dir_okay=False),
              help="A .npy of inputs (a .npz with one array per input name for several inputs): its first "
                   "one becomes input.h; all are stored as test vectors.")
@click.option("--vectors", default=8, show_default=True, type=click.IntRange(0, 1000),
              help="Random test vectors stored for `dmxgen verify OUT`.")
@click.option("--seed", default=0, show_default=True, help="Seed of the random test vectors.")
@click.option("--target", "targets", multiple=True, metavar="c|hls",
              help="What to generate: c (default) and/or hls (OUT/hls/: Vitis HLS C++, testbench, run_hls.tcl; "
                   "docs/hls.md). Repeat or separate with commas.")
@click.option("--hls-interface", type=click.Choice(["array", "stream"]), default="array", show_default=True,
              help="HLS top function ports: plain arrays, or AXI streams with DATAFLOW between layers.")
@click.option("--part", default="xcu250-figd2104-2L-e", show_default=True, help="FPGA part for run_hls.tcl.")
@click.option("--clock", "clock_ns", default=5.0, show_default=True, type=click.FloatRange(min=0.1),
              help="HLS clock period in ns.")
@click.option("--reuse-factor", default=1, show_default=True, type=click.IntRange(min=1),
              help="HLS: multiplications shared per multiplier (UNROLL factor = work / reuse).")
@click.option("--trust-pickle", is_flag=True, help=TRUST_PICKLE_HELP)
@custom_ops_option
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def command(model, out, fmt, weight_budget, min_sparsity, semantics, input_files, vectors, seed, targets,
            hls_interface, part, clock_ns, reuse_factor, trust_pickle, as_json):
    """Write MODEL as integer C to OUT: model.c/h, kernels.c/h, headers/, input.h,
    expected.h, manifest.json and test vectors. Build-check it with `dmxgen verify OUT`;
    run it on an emulated Cortex-M55 with `make -C firmware sim MODEL=OUT`.
    With --target hls, OUT/hls/ holds the HLS C++ (`make -C hls csim MODEL=OUT`)."""
    from ..targets import export

    chosen = parse_targets(targets)
    out = Path(out)
    with shown(not as_json):
        manifest = export(model, out, targets=chosen, fmt=fmt, semantics=semantics, min_sparsity=min_sparsity,
                          input_files=tuple(input_files), n_vectors=vectors, seed=seed, trust_pickle=trust_pickle,
                          weight_budget=weight_budget,
                          hls={"interface": hls_interface, "part": part, "clock_ns": clock_ns,
                               "reuse_factor": reuse_factor})
    if "c" not in chosen:
        if as_json:
            echo_json(manifest)
        else:
            click.echo(f"{out}/hls: HLS C++ for {len(manifest['hls'].get('layers', []))} layers; "
                       f"run `make -C hls csim MODEL={out}`")
        return
    if as_json:
        echo_json(manifest)
        _echo_fit_notes(manifest)
        return
    rows = [[r["index"], r["c_name"], r["op"], r.get("format", "-"),
             f"{r['weight_bytes']:,}" if r["weight_bytes"] else "-",
             f"{100 * r['sparsity']:.1f}%" if "sparsity" in r else "-"] for r in manifest["layers"]]
    click.echo(table(rows, ["#", "layer", "op", "format", "weight bytes", "zeros"]))
    io = manifest["io_bytes"]
    click.echo(f"{out}: {len(rows)} layers; weights {manifest['weight_bytes']:,} B "
               f"(dense {manifest['dense_weight_bytes']:,} B); peak activation RAM "
               f"{manifest['peak_activation_ram']:,} B = arena {manifest['arena_size']:,} B "
               f"+ input {io.get('input', 0):,} B + output {io.get('output', 0):,} B (the caller's buffers)")
    _echo_fit_notes(manifest)


def _echo_fit_notes(manifest: dict) -> None:
    """On stderr (stdout may be JSON): the Corstone-300 memories the model outgrows, as `make sim` will place it."""
    from ..corstone300 import manifest_notes

    for note in manifest_notes(manifest):
        click.echo(note, err=True)
