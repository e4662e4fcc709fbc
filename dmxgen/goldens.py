"""Run a .tflite file through a TFLite interpreter to get golden outputs.

`tflite` uses LiteRT (ai-edge-litert) or, where that is what is installed,
tflite-runtime, always with TFLite's reference kernels (BUILTIN_REF): the
default optimized path can differ by a few LSB. `tflm` uses TFLite Micro's
Python interpreter.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DmxError

GOLDENS = ("tflite", "tflm")


def _tflite_interpreter(path: Path, preserve_all: bool):
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter, OpResolverType
        except ImportError:
            raise DmxError("no TFLite interpreter: install ai-edge-litert (or tflite-runtime)") from None
    return Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                       experimental_preserve_all_tensors=preserve_all)


def run_golden(path: str | Path, inputs: list[np.ndarray], golden: str = "tflite",
               n_outputs: int = 1) -> list[np.ndarray]:
    """Run one set of inputs (graph input order); return outputs in graph output order."""
    return run_golden_layers(path, inputs, golden, n_outputs, layers=False)[0]


def run_golden_layers(path: str | Path, inputs: list[np.ndarray], golden: str = "tflite", n_outputs: int = 1,
                      layers: bool = True) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
    """One run: the outputs, and with `layers` (LiteRT only) every tensor's value by TFLite tensor index."""
    try:
        return _run_golden(Path(path), inputs, golden, n_outputs, layers)
    except DmxError:
        raise
    except (RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        hint = ""
        if "lacks data" in first:
            hint = " (its dense weights were stripped by `dmxgen compress --strip-dense`; verify the original model)"
        raise DmxError(f"{path}: the {golden} interpreter cannot run this model: {first}{hint}") from None


def _run_golden(path: Path, inputs: list[np.ndarray], golden: str, n_outputs: int,
                layers: bool) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
    if golden == "tflite":
        it = _tflite_interpreter(path, preserve_all=layers)
        it.allocate_tensors()
        for d, x in zip(it.get_input_details(), inputs):
            it.set_tensor(d["index"], np.asarray(x, dtype=d["dtype"]).reshape(d["shape"]))
        it.invoke()
        outputs = [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]
        every = {}
        for d in it.get_tensor_details() if layers else ():
            try:
                every[d["index"]] = it.get_tensor(d["index"]).copy()
            except ValueError:  # tensors without a buffer (e.g. optional inputs)
                pass
        return outputs, every
    if golden == "tflm":
        try:
            from tflite_micro import runtime
        except ImportError:
            raise DmxError("--golden tflm needs the tflite-micro package (pip install tflite-micro)") from None
        it = runtime.Interpreter.from_file(str(path))
        for i, x in enumerate(inputs):
            it.set_input(np.asarray(x), i)
        it.invoke()
        return [it.get_output(i).copy() for i in range(n_outputs)], {}
    raise DmxError(f"unknown golden {golden!r}; choose one of {', '.join(GOLDENS)}")
