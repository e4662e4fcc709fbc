"""Minimal reader of conv/FC weight tensors from a .tflite file, for codec tests.

Deliberately small: the real frontend lives in dmxgen/frontends/tflite.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

OP_KINDS = {3: "conv2d", 4: "depthwise_conv2d", 9: "fully_connected"}  # tflite.BuiltinOperator
MODELS = Path(__file__).resolve().parents[2] / ".." / "shared" / "models"


def weight_tensors(path: str | Path) -> list[tuple[str, str, np.ndarray]]:
    """(tensor name, op kind, int8 weight) for input 1 of every CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED."""
    import tflite

    model = tflite.Model.GetRootAsModel(Path(path).read_bytes(), 0)
    graph = model.Subgraphs(0)
    out = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = OP_KINDS.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
        if kind is None:
            continue
        tensor = graph.Tensors(op.Inputs(1))
        data = model.Buffers(tensor.Buffer()).DataAsNumpy()
        if tensor.Type() != tflite.TensorType.INT8 or isinstance(data, int):
            raise ValueError(f"{path}: weight of op {i} ({kind}) is not a constant int8 tensor")
        shape = tuple(int(x) for x in tensor.ShapeAsNumpy())
        out.append((tensor.Name().decode(), kind, data.view(np.int8).reshape(shape)))
    return out


def model_files(*folders: str) -> list[Path]:
    """Every .tflite under the given folders of ../shared/models (empty when absent)."""
    return sorted(p for f in folders for p in (MODELS / f).glob("*.tflite"))
