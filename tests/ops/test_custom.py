"""TFLite CUSTOM operators with the user's kernels (--custom-ops, docs/custom-ops.md): export,
host build and verify to the bit, the M55, and the one-line errors of a bad plugin."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dmxgen.backends.host import have_compiler
from dmxgen.testing.tflite_builder import ModelBuilder

DMXGEN = [sys.executable, "-m", "dmxgen.cli"]
VALID_ATTRS = [{"name": "MyOp"}, {"name": "MyOp", "options": (1, 2, 255)}]
NAME = "DMX_TEST_SCALE"  # y = clamp(x * options[0] + c), c a constant input

PLUGIN = f'''
import numpy as np
from dmxgen.custom import custom_op


@custom_op("{NAME}", c_source="scale.c")
def scale(inputs, options, output):
    k = options[0] if options else 1
    return np.clip(inputs[0].astype(np.int32) * k + inputs[1].astype(np.int32), -128, 127).astype(np.int8)
'''
KERNEL = f'''#include "kernels.h"

void dmx_custom_{NAME}(const dmx_custom_t *p, const void *const *ins, void *out)
{{
    const int8_t *x = (const int8_t *)ins[0], *c = (const int8_t *)ins[1];
    int8_t *y = (int8_t *)out;
    const int32_t k = p->options_size > 0 ? (int32_t)p->options[0] : 1;
    for (int32_t i = 0; i < p->output_size; i++) {{
        const int32_t v = (int32_t)x[i] * k + (int32_t)c[i];
        y[i] = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
    }}
}}
'''


def run(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(DMXGEN + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def plugin(tmp_path: Path, kernel: str = KERNEL, body: str = PLUGIN) -> Path:
    (tmp_path / "scale.c").write_text(kernel)
    p = tmp_path / "plugin.py"
    p.write_text(body)
    return p


def custom_model(tmp_path: Path, k: int = 3) -> Path:
    """x -> CUSTOM(x, c) -> ADD(., x): the custom operator between two builtin ones' tensors."""
    m = ModelBuilder()
    q = {"scale": 0.05, "zero_point": 0}
    x = m.tensor("x", [1, 16], **q)
    c = m.tensor("c", [1, 16], data=np.arange(-8, 8, dtype=np.int8).reshape(1, 16), **q)
    y = m.tensor("scaled", [1, 16], **q)
    z = m.tensor("z", [1, 16], scale=0.1, zero_point=0)
    m.op("CUSTOM", [x, c], [y], custom_code=NAME, custom_options=bytes([k]))
    m.op("ADD", [y, x], [z])
    return m.save(tmp_path / "custom.tflite", [x], [z])


pytestmark = pytest.mark.skipif(not have_compiler(), reason="no host C compiler")


def test_a_custom_operator_exports_with_the_users_kernel_and_verifies_bit_exact(tmp_path):
    model, plug, out = custom_model(tmp_path), plugin(tmp_path), tmp_path / "out"
    r = run("export", model, "-o", out, "--custom-ops", plug)
    assert r.returncode == 0, r.stderr
    assert (out / f"custom_{NAME}.c").read_text() == KERNEL  # copied as the user wrote it
    kernels_h = (out / "kernels.h").read_text()
    assert f"void dmx_custom_{NAME}(const dmx_custom_t *p, const void *const *ins, void *out);" in kernels_h
    r = run("verify", out, "--custom-ops", plug, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(r.stdout)
    assert result["bit_exact"] and result["inputs"] >= 8
    assert "no TFLite interpreter runs it" in result["golden_skipped"]
    r = run("verify", out, "--custom-ops", plug)  # the table, and the skipped rung said in words
    assert r.returncode == 0 and "reference vs TFLite: skipped (custom operator" in r.stdout, r.stdout


def test_the_reference_runs_the_users_function_on_the_options(tmp_path):
    """The options bytes reach the reference: k = 3 and k = 5 give the plugin's numbers."""
    from dmxgen import reference
    from dmxgen.custom import load_plugins
    from dmxgen.frontends.tflite import load_tflite

    load_plugins([plugin(tmp_path)])
    x = np.arange(-64, 64, 8, dtype=np.int8).reshape(1, 16)
    c = np.arange(-8, 8, dtype=np.int8).reshape(1, 16)
    for k in (3, 5):
        (tmp_path / str(k)).mkdir()
        g = load_tflite(custom_model(tmp_path / str(k), k))
        assert [op.kind for op in g.ops] == ["custom", "add"]
        values = reference.run(g, [x], keep=True)
        want = np.clip(x.astype(np.int32) * k + c, -128, 127)
        np.testing.assert_array_equal(values["scaled"], want)


def test_without_the_plugin_the_operator_is_refused_in_one_line_naming_the_option(tmp_path):
    r = run("export", custom_model(tmp_path), "-o", tmp_path / "out")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and f"custom operator '{NAME}' is not supported" in r.stderr
    assert "--custom-ops" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("body, message", [
    (PLUGIN.replace('c_source="scale.c"', 'c_source="missing.c"'), r"its C source .*missing.c does not exist"),
    (PLUGIN.replace("import numpy as np", "import numpy as np\nraise RuntimeError('boom')"),
     r"--custom-ops .*plugin.py: loading it failed: RuntimeError: boom"),
    (PLUGIN.replace(f'"{NAME}"', '"BAD NAME!"'), None),  # registers another name: the model's stays unknown
    (PLUGIN.replace(".astype(np.int8)", ".astype(np.int16)"), r"its reference returned int16, the output is int8"),
])
def test_a_bad_plugin_is_one_line_and_exit_2(tmp_path, body, message):
    import re

    r = run("export", custom_model(tmp_path), "-o", tmp_path / "out", "--custom-ops", plugin(tmp_path, body=body))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert re.search(message or f"custom operator '{NAME}' is not supported", r.stderr), r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.firmware
def test_the_users_kernel_runs_on_the_emulated_m55(tmp_path):
    from dmxgen import firmware

    if firmware.missing_tools():
        pytest.skip(f"firmware tools missing: {firmware.missing_tools()}")
    out = tmp_path / "out"
    assert run("export", custom_model(tmp_path), "-o", out, "--custom-ops", plugin(tmp_path)).returncode == 0
    result = firmware.run(out)
    assert result.passed, result.log[-2000:]
