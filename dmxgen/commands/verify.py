"""`dmxgen verify`: prove the reference (or an exported build) computes what the golden does."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import DmxError
from ..progress import shown
from ..vectors import random_inputs, read_input_file
from .common import TRUST_PICKLE_HELP, custom_ops_option, echo_json, load_model, table


@click.command("verify")
@click.argument("target", type=click.Path())
@click.option("--inputs", "n_inputs", default=8, show_default=True, type=click.IntRange(0, 10000),
              help="Number of random inputs.")
@click.option("--seed", default=0, show_default=True, help="Seed of the random inputs.")
@click.option("--input", "input_files", multiple=True, type=click.Path(dir_okay=False),
              help="Also run the inputs in this .npy file (int8, or float to be quantized), or a .npz with one "
                   "array per model input name. Repeatable.")
@click.option("--golden", type=click.Choice(["tflite", "tflm"]), default="tflite", show_default=True,
              help="tflite: LiteRT with TFLite's reference kernels; tflm: TFLite Micro's interpreter "
                   "(the reference then follows TFLM's arithmetic, see docs/goldens.md).")
@click.option("--trust-pickle", is_flag=True,
              help="For a folder exported from a pickled checkpoint: re-load it to compute the expected values "
                   "(any --inputs, --seed, --input; per-layer diffs). Without it, its stored test vectors are used. "
                   + TRUST_PICKLE_HELP)
@custom_ops_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(target, n_inputs, seed, input_files, golden, trust_pickle, as_json):
    """Run TARGET on random (and given) inputs and compare to the bit.

    TARGET is a .tflite model (reference vs TFLite interpreter) or a folder
    written by `dmxgen export` (generated C built on the host with sanitizers
    vs the reference; and, when the folder's source .tflite is still there
    unchanged, the reference vs its TFLite interpreter). A folder keeps each
    result in OUT/verify/ for `dmxgen report`. Exit status 0 only when every
    output is bit-exact, 1 when any differs, 2 on bad input.
    """
    with shown(not as_json):
        result = _run(Path(target), n_inputs, seed, input_files, golden, trust_pickle)
    if as_json:
        echo_json(result)
    else:
        _print(result)
    raise SystemExit(0 if result["bit_exact"] else 1)


def _run(path: Path, n_inputs: int, seed: int, input_files, golden: str, trust_pickle: bool) -> dict:
    """The comparison TARGET asks for: an exported folder's host build, or a .tflite against its golden."""
    if path.is_dir():
        return _run_folder(path, n_inputs, seed, input_files, trust_pickle)
    if not path.exists():
        raise DmxError(f"{path}: no such file")
    if path.suffix != ".tflite":
        raise DmxError(f"{path}: verify compares against a TFLite interpreter, so it needs a .tflite "
                       "model (or an exported folder)")
    from ..verify import verify_model

    graph = load_model(str(path), semantics="tflm" if golden == "tflm" else "tflite")
    custom = _custom_ops(graph)
    if custom:
        raise DmxError(f"{path}: no TFLite interpreter runs its custom operator {custom[0]!r}; export it and "
                       "verify the folder (the host build against your reference: docs/custom-ops.md)")
    sets = random_inputs(graph, n_inputs, seed)
    for f in input_files:
        sets += read_input_file(graph, f)
    if not sets:
        raise DmxError("no inputs to run: give --inputs N or --input FILE.npy")
    return verify_model(graph, path, sets, golden=golden)


def _run_folder(path: Path, n_inputs: int, seed: int, input_files, trust_pickle: bool) -> dict:
    """The host build against the reference and, when the folder came from a .tflite that is still
    there unchanged, the reference against that model's TFLite interpreter: the ladder's first two
    rungs, each recorded in OUT/verify/ for `dmxgen report`."""
    from ..backends.host import read_manifest
    from ..pipeline import source_unchanged
    from ..targets import verify_folder

    result = verify_folder(path, n_inputs=n_inputs, seed=seed, input_files=input_files, trust_pickle=trust_pickle)
    _record(path, "host_c", result["bit_exact"], f"{result['inputs']} inputs, {_summary(result)}")
    manifest = read_manifest(path)
    source = manifest["source"]["path"]
    if source and Path(source).suffix == ".tflite" and source_unchanged(manifest):
        from ..verify import verify_model

        semantics = manifest.get("semantics", "tflite")
        graph = load_model(source, semantics=semantics)
        if _custom_ops(graph):  # only the user's reference knows them: the host build rung is the check
            result["golden_skipped"] = f"custom operator {_custom_ops(graph)[0]!r}: no TFLite interpreter runs it"
            return result
        sets = random_inputs(graph, n_inputs, seed)
        for f in input_files:
            sets += read_input_file(graph, f)
        if sets:
            golden = verify_model(graph, source, sets, golden=semantics)
            _record(path, "reference_vs_tflite", golden["bit_exact"],
                    f"{golden['inputs']} inputs against {golden['golden']}, {_summary(golden)}")
            result["source_vs_golden"] = {"golden": golden["golden"], "bit_exact": golden["bit_exact"],
                                          "outputs": golden["outputs"]}
            result["bit_exact"] = result["bit_exact"] and golden["bit_exact"]
    return result


def _custom_ops(graph) -> list[str]:
    """The custom operators (docs/custom-ops.md) of a graph, which LiteRT and TFLite Micro cannot run."""
    return [op.a.name for op in graph.ops if op.kind == "custom"]


def _summary(r: dict) -> str:
    bad = sum(o["mismatches"] for o in r["outputs"])
    return "bit-exact" if r["bit_exact"] else f"{bad} mismatching values"


def _record(out: Path, step: str, bit_exact: bool, detail: str) -> None:
    """A rung that cannot be recorded (read-only folder) costs a warning, not the verification."""
    from ..report.records import record_step

    try:
        record_step(out, step, bit_exact, detail)
    except OSError as e:
        click.echo(f"dmxgen: warning: {step} result not recorded in {out} ({e.strerror or e})", err=True)


def _print(r: dict) -> None:
    click.echo(f"{r['model']}: {r['inputs']} inputs against {r['golden']}")
    rows = [[o["name"], o["max_abs_diff"], o["mismatches"], o.get("values", "")] for o in r["outputs"]]
    click.echo(table(rows, ["output", "max |diff|", "mismatches", "values"]))
    bad = [x for x in r.get("layers", []) if x["mismatches"]]
    if bad:
        click.echo("first differing layers:")
        click.echo(table([[x["name"], x["op"], x["max_abs_diff"], x["mismatches"]] for x in bad[:5]],
                         ["layer", "op", "max |diff|", "mismatches"]))
    if "golden_skipped" in r:
        click.echo(f"reference vs TFLite: skipped ({r['golden_skipped']})")
    if "source_vs_golden" in r:
        g = r["source_vs_golden"]
        click.echo(f"reference vs {g['golden']} on the same inputs: " + ("bit-exact" if g["bit_exact"] else "MISMATCH"))
    if "early_exit" in r:
        e = r["early_exit"]
        click.echo(f"{e['function']} on the same inputs: exits taken {', '.join(map(str, e['exits']))}; "
                   + ("same exits and bytes as the reference" if e["bit_exact"] else
                      f"MISMATCH ({e['exit_mismatches']} exits, {e['output_mismatches']} outputs differ; "
                      f"first at input {e['first_mismatch']})"))
    click.echo("BIT-EXACT" if r["bit_exact"] else "MISMATCH")
