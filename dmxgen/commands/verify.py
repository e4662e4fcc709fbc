"""`dmxgen verify`: prove the reference (or an exported build) computes what the golden does."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import DmxError
from ..progress import shown
from ..vectors import random_inputs, read_input_file
from .common import TRUST_PICKLE_HELP, echo_json, load_model, table


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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(target, n_inputs, seed, input_files, golden, trust_pickle, as_json):
    """Run TARGET on random (and given) inputs and compare to the bit.

    TARGET is a .tflite model (reference vs TFLite interpreter) or a folder
    written by `dmxgen export` (generated C built on the host with sanitizers
    vs the reference). Exit status 0 only when every output is bit-exact,
    1 when any differs, 2 on bad input.
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
        from ..targets import verify_folder

        return verify_folder(path, n_inputs=n_inputs, seed=seed, input_files=input_files, trust_pickle=trust_pickle)
    if not path.exists():
        raise DmxError(f"{path}: no such file")
    if path.suffix != ".tflite":
        raise DmxError(f"{path}: verify compares against a TFLite interpreter, so it needs a .tflite "
                       "model (or an exported folder)")
    from ..verify import verify_model

    graph = load_model(str(path), semantics="tflm" if golden == "tflm" else "tflite")
    sets = random_inputs(graph, n_inputs, seed)
    for f in input_files:
        sets += read_input_file(graph, f)
    if not sets:
        raise DmxError("no inputs to run: give --inputs N or --input FILE.npy")
    return verify_model(graph, path, sets, golden=golden)


def _print(r: dict) -> None:
    click.echo(f"{r['model']}: {r['inputs']} inputs against {r['golden']}")
    rows = [[o["name"], o["max_abs_diff"], o["mismatches"], o.get("values", "")] for o in r["outputs"]]
    click.echo(table(rows, ["output", "max |diff|", "mismatches", "values"]))
    bad = [x for x in r.get("layers", []) if x["mismatches"]]
    if bad:
        click.echo("first differing layers:")
        click.echo(table([[x["name"], x["op"], x["max_abs_diff"], x["mismatches"]] for x in bad[:5]],
                         ["layer", "op", "max |diff|", "mismatches"]))
    click.echo("BIT-EXACT" if r["bit_exact"] else "MISMATCH")
