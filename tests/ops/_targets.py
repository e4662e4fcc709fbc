"""Run an op file's cases on every target its kind declares: host C, HLS csim, the M55 under QEMU.

The golden tests (`_harness.check`) hold the reference equal to LiteRT and TFLite
Micro. Here the same cases, with the same input sets, go through the real export
(`dmxgen.targets.export`, the pipeline every `dmxgen export` runs) and each target
must reproduce the reference to the bit:

- `c`: the host build `dmxgen verify` makes (gcc -Wall -Wextra -Werror, ASan and
  UBSan), every input set of every case;
- `hls`: `make -C hls csim` (g++), every input set of every case;
- `m55` (marked `firmware`): the firmware image on QEMU, built with the MVE kernels
  and, when the kind declares `c_mve`, also with -DDMX_NO_MVE (scalar); a deterministic
  sample, as those builds are the slow ones: every third case, one input vector in
  which the i-th of them gets its input set i.

Compiling dominates, so all cases of one file are merged into one graph
(dmxgen/testing/zoo.py) and built once per target. A case joins a target's build
iff every op its model loads to declares the target in its spec (`targets` in
dmxgen/ops/<kind>.py), so a new kind is run on what it claims, and nothing else.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from dmxgen import firmware, reference
from dmxgen.backends import host
from dmxgen.backends.hls_csim import run_csim
from dmxgen.frontends.tflite import load_tflite
from dmxgen.graph import Graph
from dmxgen.ops import SPECS
from dmxgen.targets import export
from dmxgen.testing.zoo import merge

from ._harness import Case, case_sets, save

# target -> the spec target a kind must list for its cases to run there
NEEDS = {"c": "c", "hls": "hls", "m55": "c"}
_needs_firmware = pytest.mark.skipif(bool(firmware.missing_tools()),
                                     reason=f"needs {', '.join(firmware.missing_tools())} (tools/setup.sh)")
_needs_gcc = pytest.mark.skipif(not host.have_compiler(), reason="no host gcc")
_needs_gxx = pytest.mark.skipif(shutil.which("g++") is None or shutil.which("make") is None,
                                reason="HLS csim needs g++ and make")
# -O1: the flow-based warnings (-Wmaybe-uninitialized) stay on, and the sanitized build of a zoo
# of a hundred layers takes a third less than at -O2 (tests/backends builds at -O2).
HOST_OPT = "-O1"
MARKS = {"c": [_needs_gcc], "hls": [_needs_gxx], "m55": [pytest.mark.firmware, _needs_firmware]}


def targets(*kinds: str) -> list:
    """pytest params: the targets (c, hls, m55) that at least one of `kinds` declares."""
    return [pytest.param(t, marks=MARKS[t], id=t) for t in NEEDS
            if any(NEEDS[t] in SPECS[k].targets for k in kinds)]


def targets16(*kinds: str) -> list:
    """The targets of `kinds` that run int16 activations: HLS only if every kind's HLS kernel registers
    int16 (backends/hls_ops.py `dtypes`)."""
    from dmxgen.backends.hls_ops import HLS_BUILDERS

    def hls16(kind: str) -> bool:
        entry = HLS_BUILDERS.entries.get(kind)
        return entry is not None and "int16" in entry.dtypes

    return [p for p in targets(*kinds) if p.values[0] != "hls" or all(hls16(k) for k in kinds)]


@dataclass
class Zoo:
    """The cases that run on one target, merged: the graph and, per vector, inputs and reference outputs."""

    graph: Graph
    inputs: list[list[np.ndarray]]
    outputs: list[list[np.ndarray]]
    owners: list[str]  # per graph output: the case it belongs to


def declares(graph: Graph, target: str) -> bool:
    return all(NEEDS[target] in op.spec.targets for op in graph.ops)


def build_zoo(tmp_path: Path, cases: dict[str, Case], target: str, semantics: str = "tflite", tflm=(),
              sample: bool = False) -> Zoo:
    """Load each case under `semantics` (the names in `tflm` under TFLM's too), keep those that
    declare `target`, merge them.

    Every vector holds one input set per case (a case with fewer sets starts again at its
    first); `sample` makes one vector where case i contributes its input set i.
    """
    unknown = set(tflm) - set(cases)
    assert not unknown, f"tflm names cases that do not exist: {sorted(unknown)}"
    graphs, sets, owners = {}, {}, []
    for name, case in cases.items():
        if isinstance(case.m, Graph):  # a kind no frontend writes from a file (lut_interp): the graph itself
            loaded = [(name, case.m)]
        else:
            path = save(case.m, tmp_path, case.inputs, case.outputs, name=name)
            loaded = [(name if sem == semantics else f"{name}_{sem}", load_tflite(path, semantics=sem))
                      for sem in dict.fromkeys([semantics] + (["tflm"] if name in tflm else []))]
        for key, graph in loaded:
            if not declares(graph, target):
                continue
            graphs[key], sets[key] = graph, case_sets(case, graph)
            owners += [key] * len(graph.outputs)
    assert graphs, f"no case declares target {target!r}: the parametrization and the specs disagree"
    if sample:  # every M55_STRIDE-th case, each with a different one of its input sets
        keep = list(graphs)[::M55_STRIDE]
        graphs, sets = {k: graphs[k] for k in keep}, {k: sets[k] for k in keep}
        owners = [o for o in owners if o in graphs]
        picks = [[s[i % len(s)]] for i, s in enumerate(sets.values())]
    else:
        count = max(len(s) for s in sets.values())
        picks = [[s[k % len(s)] for k in range(count)] for s in sets.values()]
    expected = {}  # (case, set index) -> reference outputs, each distinct set run once
    inputs, outputs = [], []
    for k in range(len(picks[0])):
        vector, want = [], []
        for (key, graph), chosen in zip(graphs.items(), picks):
            one = chosen[k]
            if (key, id(one)) not in expected:
                values = reference.run(graph, one)
                expected[key, id(one)] = [np.asarray(values[n]) for n in graph.outputs]
            vector += list(one)
            want += expected[key, id(one)]
        inputs.append(vector)
        outputs.append(want)
    return Zoo(merge(graphs), inputs, outputs, owners)


# The firmware builds (two per zoo, on QEMU) are the slow ones: they run every third case.
M55_STRIDE = 3
# seeded random vectors the export adds before ours: HLS exports always make at least one
RANDOM_VECTORS = {"c": 0, "hls": 1, "m55": 0}


def _export(zoo: Zoo, tmp_path: Path, target: str) -> tuple[Path, dict]:
    """The real export of the zoo with its vectors given as an --input .npz (no random vectors)."""
    npz = tmp_path / f"{target}_inputs.npz"
    np.savez(npz, **{name: np.stack([v[i] for v in zoo.inputs]) for i, name in enumerate(zoo.graph.inputs)})
    out = tmp_path / f"{target}_out"
    manifest = export(zoo.graph, out, targets=("hls",) if target == "hls" else ("c",), input_files=(str(npz),),
                      n_vectors=RANDOM_VECTORS[target])
    return out, manifest


def run_host_c(zoo: Zoo, tmp_path: Path) -> None:
    out, manifest = _export(zoo, tmp_path, "c")
    layer_ops = [(layer["name"], layer["op"]) for layer in manifest["layers"]]
    expected = host.Expected(zoo.inputs, zoo.outputs, None, layer_ops, "model")
    result = host.check_folder(out, manifest, expected, opt=HOST_OPT)
    bad = [f"{owner}: {o['mismatches']} of {o['values']} values differ (max {o['max_abs_diff']})"
           for owner, o in zip(zoo.owners, result["outputs"]) if o["mismatches"]]
    assert result["bit_exact"] and not bad, "host C differs from the reference: " + "; ".join(bad)
    assert result["inputs"] == len(zoo.inputs)


def run_hls_csim(zoo: Zoo, tmp_path: Path) -> None:
    out, _ = _export(zoo, tmp_path, "hls")
    r = run_csim(out, opt="-O1")
    vectors = RANDOM_VECTORS["hls"] + len(zoo.inputs)
    values = sum(zoo.graph.tensors[n].size for n in zoo.graph.outputs) * vectors
    assert r.returncode == 0 and f"PASS: {vectors} vectors, {values} output values bit-exact" in r.stdout, (
        r.stdout[-3000:] + r.stderr[-3000:])


def run_m55(zoo: Zoo, tmp_path: Path, scalar_too: bool) -> None:
    out, _ = _export(zoo, tmp_path, "m55")
    want = np.concatenate([np.asarray(v).reshape(-1) for v in zoo.outputs[0]])
    builds = {"mve": ""} | ({"scalar": "-DDMX_NO_MVE"} if scalar_too else {})
    for build, flags in builds.items():
        r = firmware.run(out, build_dir=out / f"build-{build}", extra_cflags=flags)
        assert r.passed, f"M55 {build}: {r.verdict}\n{r.log[-2000:]}"
        got = np.array(r.outputs, dtype=want.dtype)
        assert got.shape == want.shape and got.tobytes() == want.tobytes(), f"M55 {build} outputs differ"


def check_targets(tmp_path: Path, target: str, cases: dict[str, Case], semantics: str = "tflite",
                  tflm=()) -> Zoo:
    """Every case that declares `target`, bit-exact on it: loaded with `semantics`, and the cases
    named in `tflm` also with TFLite Micro's (where its arithmetic differs: roundings, multipliers)."""
    tmp_path = Path(tmp_path)
    zoo = build_zoo(tmp_path, cases, target, semantics, tflm, sample=target == "m55")
    if target == "c":
        run_host_c(zoo, tmp_path)
    elif target == "hls":
        run_hls_csim(zoo, tmp_path)
    elif target == "m55":
        run_m55(zoo, tmp_path, scalar_too=any("c_mve" in op.spec.targets for op in zoo.graph.ops))
    else:
        raise ValueError(f"unknown target {target!r}")
    return zoo
