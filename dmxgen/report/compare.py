"""Lines TFLite Micro's operators up with dmxgen's layers, for the per-layer comparison.

The two lists need not be the same length (dmxgen lowers some ops, folds reshapes into aliases), so
the op kinds are aligned as sequences and only matched runs are paired.
"""
from __future__ import annotations

from difflib import SequenceMatcher

# TFLite builtin operator -> dmxgen op kind
TFLM_KINDS = {
    "CONV_2D": "conv2d", "DEPTHWISE_CONV_2D": "depthwise_conv2d", "FULLY_CONNECTED": "fully_connected",
    "AVERAGE_POOL_2D": "avg_pool2d", "MAX_POOL_2D": "max_pool2d", "SOFTMAX": "softmax", "RESHAPE": "reshape",
    "ADD": "add", "MUL": "mul", "PAD": "pad", "MEAN": "mean", "REDUCE_MAX": "reduce_max", "QUANTIZE": "quantize",
    "DEQUANTIZE": "dequantize", "CONCATENATION": "concat", "LOGISTIC": "lut",
}
# dmxgen kinds that one TFLite operator maps to in another variant (ops/<kind>.py split them by mode)
SAME_OPERATOR = {"requantize": "quantize", "softmax_gemmlowp": "softmax", "mean_float": "mean"}


def align(layers: list[dict], tflm_ops: list[dict]) -> dict[int, dict]:
    """dmxgen layer index -> the TFLM operator record ({"index", "op", "instructions"}) it matches."""
    ours = [SAME_OPERATOR.get(layer.get("op"), layer.get("op")) for layer in layers]
    theirs = [TFLM_KINDS.get(o.get("op"), str(o.get("op")).lower()) for o in tflm_ops]
    pairs: dict[int, dict] = {}
    for block in SequenceMatcher(a=ours, b=theirs, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            pairs[int(layers[block.a + k]["index"])] = tflm_ops[block.b + k]
    return pairs


def select(tflm: list | dict, model: str) -> list[dict]:
    """The bench_tflm.py results for this model (all of them when none names it)."""
    runs = tflm if isinstance(tflm, list) else [tflm]
    runs = [r for r in runs if isinstance(r, dict) and isinstance(r.get("ops"), list)]
    named = [r for r in runs if r.get("model") == model]
    return named or runs
