"""`dmxgen export`: a model -> a self-contained C folder (docs/exported-folder.md)."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import click

from ..errors import DmxError
from .common import TRUST_PICKLE_HELP, echo_json, load_model, table

TARGETS = ("c", "hls")


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
@click.option("--format", "fmt", type=click.Choice(["dense", "csr", "dcsr", "auto"]), default="auto",
              show_default=True, help="Weight storage: csr/dcsr apply to fully connected and conv layers with "
              "enough zeros (see --min-sparsity); auto takes the smallest format per layer.")
@click.option("--min-sparsity", default=0.5, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="With --format csr/dcsr, layers with fewer zeros than this stay dense.")
@click.option("--semantics", type=click.Choice(["tflite", "tflm"]), default="tflite", show_default=True,
              help="tflite: TFLite's reference kernels (float-table softmax, single-rounding FC); "
                   "tflm: TFLite Micro's integer-only arithmetic (docs/goldens.md).")
@click.option("--input", "input_files", multiple=True, type=click.Path(dir_okay=False),
              help="A .npy of inputs: its first one becomes input.h; all are stored as test vectors.")
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
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def command(model, out, fmt, min_sparsity, semantics, input_files, vectors, seed, targets, hls_interface, part,
            clock_ns, reuse_factor, trust_pickle, as_json):
    """Write MODEL as integer C to OUT: model.c/h, kernels.c/h, headers/, input.h,
    expected.h, manifest.json and test vectors. Build-check it with `dmxgen verify OUT`;
    run it on an emulated Cortex-M55 with `make -C firmware sim MODEL=OUT`.
    With --target hls, OUT/hls/ holds the HLS C++ (`make -C hls csim MODEL=OUT`)."""
    from ..backends.c import export
    from ..backends.c_files import atomic_folder

    chosen = parse_targets(targets)
    graph = load_model(model, semantics=semantics, trust_pickle=trust_pickle)
    out = Path(out)
    hls_tmp = None
    try:
        if "hls" in chosen:  # written first, beside OUT, so a failure leaves OUT untouched
            hls_tmp, hls_manifest = _write_hls(graph, out, fmt, min_sparsity, input_files, max(vectors, 1), seed,
                                               hls_interface, part, clock_ns, reuse_factor)
        if "c" in chosen:
            manifest = export(graph, out, source=model, fmt=fmt, semantics=semantics, min_sparsity=min_sparsity,
                              input_files=tuple(input_files), n_vectors=vectors, seed=seed)
        else:
            manifest = {"targets": ["hls"], "source": {"path": str(Path(model).resolve())}, "semantics": semantics}
            with atomic_folder(out, "manifest.json") as tmp:
                (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if hls_tmp is not None:
            shutil.rmtree(out / "hls", ignore_errors=True)
            (hls_tmp / "hls").rename(out / "hls")
            manifest["hls"] = hls_manifest
            if "c" in chosen:
                (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    finally:
        if hls_tmp is not None:
            shutil.rmtree(hls_tmp, ignore_errors=True)
    if "c" not in chosen:
        if as_json:
            echo_json(manifest)
        else:
            click.echo(f"{out}/hls: HLS C++ for {len(manifest['hls'].get('layers', []))} layers; "
                       f"run `make -C hls csim MODEL={out}`")
        return
    if as_json:
        echo_json(manifest)
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


def _write_hls(graph, out: Path, fmt, min_sparsity, input_files, n_vectors, seed, interface, part, clock_ns,
               reuse_factor):
    """OUT/hls/ rendered into a temporary sibling folder; returns (that folder, the HLS manifest)."""
    from ..backends import c_vectors
    from ..backends.hls import write_hls

    vectors = c_vectors.compute(graph, graph, n_vectors, seed, tuple(input_files))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.hls-", dir=out.parent))
    try:
        manifest = write_hls(graph, tmp, weight_format=fmt, interface=interface, sample_inputs=vectors.inputs,
                             expected_outputs=vectors.outputs, part=part, clock_ns=clock_ns,
                             reuse_factor=reuse_factor, min_sparsity=min_sparsity)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp, manifest
