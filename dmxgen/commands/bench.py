"""`dmxgen bench`: per-layer instruction counts of an exported model on the emulated Cortex-M55."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .. import corstone300, firmware
from ..errors import DmxError
from ..progress import progress, shown
from ..report.records import save_bench
from .common import echo_json, table


@click.command("bench")
@click.argument("out", type=click.Path())
@click.option("--target", type=click.Choice(["m55"]), default="m55", show_default=True,
              help="m55: the firmware harness on QEMU's mps3-an547 (Corstone-300) with -icount.")
@click.option("--runs", default=2, show_default=True, type=click.IntRange(1, 10),
              help="Runs to make; every run must give the same per-layer counts.")
@click.option("--arena", type=click.Choice(corstone300.ARENA_CHOICES), default="auto", show_default=True,
              help="Memory for the model's arena, as `make sim ARENA=`: auto takes DTCM when it fits, "
                   "else ISRAM, else DDR (docs/firmware.md).")
@click.option("--build-dir", type=click.Path(file_okay=False), default=None,
              help="Where to build (default OUT/build-cortex-m55).")
@click.option("--timeout", default=600, show_default=True, type=click.IntRange(1, 36000),
              help="Seconds one run may take.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(out, target, runs, arena, build_dir, timeout, as_json):
    """Build OUT (a folder written by `dmxgen export`) into firmware, run it
    RUNS times and print the instructions each layer takes.

    QEMU counts instructions, not cycles (docs/firmware.md). Exit status 0
    when the output matches expected.h and every run counted the same, 1
    otherwise, 2 on bad input or missing tools.
    """
    model_dir = firmware.check_model_dir(out)
    with shown(not as_json):
        results = [firmware.run(model_dir, build_dir=build_dir, arena=arena, timeout=timeout)
                   for _ in progress(range(runs), desc="bench m55", unit="run", leave=False)]
    first = results[0]
    info = _manifest_layers(model_dir)
    total = first.total_instructions or 0
    rows = [{"index": c.index, "name": c.name, **info.get(c.index, {"op": "-", "format": "-"}),
             "instructions": c.instructions, "ticks": c.ticks,
             "percent": 100.0 * c.instructions / total if total else 0.0} for c in first.layers]
    repeatable = all(r.counts() == first.counts() and r.total_ticks == first.total_ticks for r in results)
    ok = all(r.passed for r in results) and repeatable
    report = {"model": str(out), "target": target, "arena": arena, "arena_region": first.arena_region,
              "weights_region": first.weights_region, "runs": runs, "passed": first.passed, "verdict": first.verdict,
              "repeatable": repeatable, "total_instructions": total, "total_ticks": first.total_ticks,
              "layers": rows}
    early_exit = _early_exit(first, model_dir, build_dir)
    if early_exit:
        report["early_exit"] = early_exit
    save_bench(model_dir, report, size=firmware.size(model_dir, build_dir=build_dir, arena=arena, timeout=timeout))
    if as_json:
        echo_json(report)
    else:
        _print(report, first)
    raise SystemExit(0 if ok else 1)


def _early_exit(first: firmware.FirmwareRun, model_dir: Path, build_dir) -> dict | None:
    from ._early_exit_bench import report

    return report(first.log, Path(build_dir) if build_dir else firmware.default_build_dir(model_dir, "cortex-m55"))


def _manifest_layers(model_dir: Path) -> dict[int, dict[str, str]]:
    """Layer index -> op kind and weight format from manifest.json (absent ones print as '-')."""
    path = model_dir / "manifest.json"
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DmxError(f"{path}: not readable JSON ({e})") from None
    layers = manifest.get("layers", []) if isinstance(manifest, dict) else []
    return {int(layer.get("index", i)): {"op": str(layer.get("op") or "-"), "format": str(layer.get("format") or "-")}
            for i, layer in enumerate(layers) if isinstance(layer, dict)}


def _print(report: dict, first: firmware.FirmwareRun) -> None:
    runs = f"{report['runs']} run" + ("s" if report["runs"] > 1 else "")
    click.echo(f"{report['model']}: Cortex-M55 (QEMU mps3-an547, -icount), {runs}; arena in "
               f"{report['arena_region']} (--arena {report['arena']}), weights in {report['weights_region']}")
    body = [[r["index"], r["name"], r["op"], r["format"], f"{r['instructions']:,}", f"{r['percent']:.1f}%"]
            for r in report["layers"]]
    body.append(["", "total", "", "", f"{report['total_instructions']:,}", "100.0%"])
    click.echo(table(body, ["#", "layer", "op", "weights", "instructions", "share"]))
    click.echo("instructions: SysTick ticks / 1.024 under QEMU -icount shift=5; the total includes the code "
               "between layers")
    ee = report.get("early_exit")
    if ee:
        extra, ram = ee["exit_branches_extra_flash_bytes"], ee.get("exit_branches_extra_ram_bytes")
        click.echo(f"early exit over {ee['vectors']} stored vectors: {ee['instructions_with_early_exit']:,} "
                   f"instructions per inference on average, {ee['instructions_without_early_exit']:,} without "
                   f"(exits taken {', '.join(map(str, ee['exits']))}); exit branches add "
                   f"{'?' if extra is None else f'{extra:,}'} flash bytes and "
                   f"{'?' if ram is None else f'{ram:,}'} RAM bytes (model_ee.o minus model.o)")
    if not report["repeatable"]:
        click.echo("NOT REPEATABLE: the runs counted differently", err=True)
    if not first.passed:
        for i, got, want in first.mismatches:
            click.echo(f"output {i}: got {got}, expected {want}", err=True)
        click.echo(f"firmware: {first.verdict}", err=True)
    click.echo("PASS" if report["passed"] and report["repeatable"] else "FAIL")
