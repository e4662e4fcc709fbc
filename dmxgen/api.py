"""Public PyTorch API: aware(), Model, save(), load() (re-exported from dmxgen).

    import dmxgen
    model = dmxgen.Model(net).transform("models/lenet_config.yaml")
    with model.calibrating():
        model(calibration_batch)
    ...fine-tune model like any nn.Module...
    dmxgen.save(model, "lenet.pt2", example_input)      # then: dmxgen export lenet.pt2 ...
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .compress.aware import aware
from .compress.functions import register_function
from .compress.model import Model
from .errors import DmxError
from .frontends import torch_graph  # noqa: F401  registers the Model -> Graph builder that Model.to_graph uses

__all__ = ["aware", "Model", "save", "load", "to_graph", "register_function", "reference_outputs"]


def reference_outputs(graph, codes):
    """The integer reference's output codes for a batch of int8 inputs (the graph's batch is 1),
    e.g. graph = model.to_graph(x[:1]); reference_outputs(graph, model.quantize_input(x)).
    Several inputs: a tuple of batches in graph input order (what quantize_input returns); several
    outputs: a tuple of arrays in graph output order."""
    import numpy as np

    from . import reference

    sets = tuple(codes) if isinstance(codes, (tuple, list)) else (codes,)
    runs = [reference.run(graph, [c[i:i + 1] for c in sets]) for i in range(len(sets[0]))]
    outs = tuple(np.concatenate([r[name] for r in runs]) for name in graph.outputs)
    return outs[0] if len(outs) == 1 else outs


def to_graph(model: Model, example_input):
    """The integer Graph of a transformed, calibrated Model (example_input: a tensor, or a tuple of
    one tensor per input)."""
    if not isinstance(model, Model):
        raise DmxError(f"expected a dmxgen.Model, got {type(model).__name__}; wrap the net with dmxgen.Model(net)")
    return model.to_graph(*_as_tuple(example_input))


def save(model: Model, path, example_input) -> Path:
    """Write `path` (.pt2): torch.export's archive of the fake-quantized model in eval
    mode, plus the integer Graph as JSON that `dmxgen export` reads without unpickling.

    Refuses a model that was not transformed or whose activation ranges were never
    recorded, and one whose fake-quantized layers compute other codes on example_input
    than the integer reference runs on the exported graph (naming the first such layer).
    The graph takes batch 1 of example_input's shape; a model with several inputs takes a tuple
    of example tensors, one per forward() parameter.
    """
    from . import reference
    from .compress.agreement import check_agreement
    from .frontends.torch_graph import graph_and_tensors
    from .frontends.torch_io import ENTRY, dumps
    from .compress.multi_io import examples as example_tensors

    if not isinstance(model, Model):
        raise DmxError(f"dmxgen.save needs a dmxgen.Model, got {type(model).__name__}")
    model.check_calibrated("save")
    path = Path(path)
    examples = example_tensors(model.body, _as_tuple(example_input))
    graph, tensors = graph_and_tensors(model, *examples)
    codes = _as_tuple(model.quantize_input(*examples))
    check_agreement(model, graph, tensors, reference.run(graph, list(codes), keep=True), examples)
    meta = {"layers": {n: _describe(c) for n, c in model.layer_configs.items()},
            "sparsity": model.sparsity(), "config": model.config_source,
            "input_shape": list(examples[0].shape), "torch": torch.__version__}
    if len(examples) > 1:
        meta["input_shapes"] = [list(x.shape) for x in examples]
    if hasattr(model, "exit_graph"):  # an EarlyExit: its entry points and exit policy are saved too
        graph = model.exit_graph(graph)
    text = dumps(graph, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        program = torch.export.export(_Frozen(model), examples)
    except Exception as e:  # export of exotic Python can fail; the graph alone is what dmxgen needs
        raise DmxError(f"torch.export could not export the model ({type(e).__name__}: "
                       f"{str(e).splitlines()[0] if str(e) else ''})") from None
    finally:
        model.train(was_training)
    torch.export.save(program, str(path), extra_files={ENTRY: text})
    return path


def load(path, trust_pickle: bool = False):
    """The fake-quantized model saved by `save`, as a torch nn.Module (eval semantics).

    Uses torch.export.load (no unpickling of code). For the integer Graph use
    dmxgen.frontends.load(path).
    """
    from .compress import kernel_ops  # noqa: F401  registers the custom ops saved softmax / matmul layers call
    from .frontends.torch import load_torch

    load_torch(path, trust_pickle=trust_pickle)  # refuses pickles and foreign archives with a clear message
    try:
        return torch.export.load(str(path)).module()
    except Exception as e:
        raise DmxError(f"{path}: torch.export.load failed ({type(e).__name__}: {e})") from None


class _Frozen(torch.nn.Module):
    """A copy of a Model's compressed body with its quantizers' scales fixed as
    Python numbers, which is what torch.export needs (no data-dependent reads)."""

    def __init__(self, model: Model):
        import copy

        from .compress.quant import ActQuant

        super().__init__()
        self.body = copy.deepcopy(model.body)
        for m in self.body.modules():
            if isinstance(m, ActQuant):
                m.freeze()
        for m in self.body.modules():
            if hasattr(m, "freeze") and not isinstance(m, ActQuant):
                m.freeze()

    def forward(self, *xs):
        return self.body(*xs)


def _as_tuple(x) -> tuple:
    """An example input as a tuple: a tuple or list stays one, anything else is one input."""
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _describe(cfg) -> dict:
    return json.loads(json.dumps({
        "weight_format": cfg.weight.spelled() if cfg.weight else "SAME",
        "input_format": cfg.input.spelled() if cfg.input else "SAME",
        "output_format": cfg.output.spelled() if cfg.output else "SAME",
        "weight_sparseness": cfg.sparseness.spelled(),
        "approximation_function": cfg.approximation.spelled()}))
