"""`Model`: a float network made compressible, trainable as an ordinary nn.Module.

    model = Model(net)
    model.transform("config.yaml")          # quantize, prune, tabulate activations
    with model.calibrating():               # record activation ranges
        model(batch)
    ... fine-tune with any training loop ...
    dmxgen.save(model, "model.pt2", example_input)
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import DmxError
from .config import LayerConfig, LayerInfo, load_config
from .layers import QuantWeighted
from .layout import layout_of_rank, to_graph_order
from .quant import ActQuant


GraphBuilder = Callable[["Model", torch.Tensor], object]
_graph_builder: list[GraphBuilder] = []  # filled by frontends/torch_graph.py when it is imported


def set_graph_builder(build: GraphBuilder) -> None:
    """The torch frontend registers its Model -> Graph function here. compress may not import the
    frontends (DESIGN.md: the frontend turns a compressed Model into a Graph, not the other way round),
    so the Model reaches it through this slot; dmxgen.api imports the frontend, which fills it."""
    _graph_builder[:] = [build]


def _build_graph(model: "Model", example: torch.Tensor):
    if not _graph_builder:
        raise DmxError("the torch frontend is not loaded: import dmxgen.api (or dmxgen.frontends.torch_graph) "
                       "to build the integer graph of a Model")
    return _graph_builder[0](model, example)


class Model(nn.Module):
    """Wraps `net`; after `transform` its forward runs the fake-quantized network.

    Before `transform` it is the float net unchanged. The compressed network
    shares the float net's parameters, so training either trains both.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        if not isinstance(net, nn.Module):
            raise DmxError(f"Model() needs a torch.nn.Module, got {type(net).__name__}")
        if isinstance(net, Model):
            net = net.float_net
        self.body: nn.Module = net
        object.__setattr__(self, "float_net", net)
        self.layer_configs: dict[str, LayerConfig] = {}
        self.layers: list[LayerInfo] = []
        self.transformed = False
        self.config_source = ""
        self.example_shape: tuple[int, ...] = ()  # shape of the last input, for to_graph() without one

    _outputs: int | None = 1  # outputs the PyTorch path handles (EarlyExit: any, one per exit and the final)
    _export_checked = True  # set False by transform: the first calibration batch checks the export
    _calibrating_now = False

    def transform(self, config=None) -> "Model":
        """Apply a config (YAML path or dict; None = INT8 everywhere) to the float net.

        Masks are computed from the current weights; activation ranges are
        empty until `calibrating()` records them. What the layers alone show
        cannot be exported is refused here; what depends on tensor sizes, on
        the first calibration batch.
        """
        from .build import build_compressed

        rules = load_config(config)
        source = str(config) if isinstance(config, (str, Path)) else "config"
        gm, cfgs, layers = build_compressed(self.float_net, rules, source, self._outputs)
        self.body = gm
        self.layer_configs, self.layers = cfgs, layers
        self.transformed = True
        self.config_source = source
        self._export_checked = False
        _mark_aware(self.float_net, cfgs)
        return self

    def forward(self, *args, **kwargs):
        if args and isinstance(args[0], torch.Tensor):
            self.example_shape = tuple(args[0].shape)
        out = self.body(*args, **kwargs)
        if self._calibrating_now and not self._export_checked and args and isinstance(args[0], torch.Tensor):
            self._export_checked = True
            self._check_export(args[0][:1])
        return out

    def _check_export(self, example: torch.Tensor) -> None:
        """Build (and drop) the integer graph on the first calibration batch, so that what only sizes
        rule out (a reshape that would need a transpose, unequal adaptive windows, ...) is refused
        now with export's message, not first at dmxgen.save."""
        quants = list(self.act_quants().values())
        if not all(q.calibrated for q in quants):  # a branch this batch did not reach: save will tell
            return
        for q in quants:
            q.calibrating = False
        try:
            _build_graph(self, example)
        finally:
            for q in quants:
                q.calibrating = True

    # -- quantizers ----------------------------------------------------------
    def act_quants(self) -> dict[str, ActQuant]:
        return {name: m for name, m in self.body.named_modules() if isinstance(m, ActQuant)}

    def uncalibrated(self) -> list[str]:
        return [q.label or name for name, q in self.act_quants().items() if not q.calibrated]

    @contextmanager
    def calibrating(self):
        """Record activation ranges (min/max) over the batches run inside the block.

        Ranges recorded before are discarded on entry. The model runs in eval
        mode inside the block and returns to its previous mode after.
        """
        self._need_transform("calibrate")
        quants = list(self.act_quants().values())
        was_training = self.training
        self.eval()
        for q in quants:
            q.reset()
            q.calibrating = True
        self._calibrating_now = True
        try:
            with torch.no_grad():
                yield self
        finally:
            self._calibrating_now = False
            for q in quants:
                q.calibrating = False
            self.train(was_training)

    def check_calibrated(self, what: str = "export") -> None:
        """Refuse to export or save a model whose activation ranges were never recorded."""
        self._need_transform(what)
        missing = self.uncalibrated()
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise DmxError(f"cannot {what}: activation ranges were never recorded for {len(missing)} tensor(s) "
                           f"({shown}); run `with model.calibrating(): model(batch)` on representative data first")

    def _need_transform(self, what: str) -> None:
        if not self.transformed:
            raise DmxError(f"cannot {what}: call model.transform(config) first (it quantizes the layers)")

    # -- facts for users and tests ---------------------------------------------
    def weighted_layers(self) -> dict[str, QuantWeighted]:
        return {n: m for n, m in self.body.named_modules() if isinstance(m, QuantWeighted)}

    def sparsity(self) -> dict[str, float]:
        """Fraction of masked-out weights per weighted layer."""
        return {n: 1.0 - float(m.weight_mask.mean()) for n, m in self.weighted_layers().items()}

    def input_quant(self) -> ActQuant:
        q = [m for n, m in self.act_quants().items() if n.endswith("_quant") and "." not in n]
        if len(q) != 1:
            raise DmxError(f"expected one graph input, found {len(q)}")
        return q[0]

    def output_quant(self) -> ActQuant:
        """The quantizer of the (single) model output: its grid is the exported output's."""
        self._need_transform("find the output grid")
        out = next(n for n in self.body.graph.nodes if n.op == "output").args[0]
        if isinstance(out, (list, tuple)):
            if len(out) != 1:
                raise DmxError(f"the model has {len(out)} outputs; output_quant() needs one")
            out = out[0]
        return value_quant(self.body, out)

    def output_codes(self, x: torch.Tensor) -> np.ndarray:
        """The model's outputs on x as integer codes of the output grid, in the graph's layout:
        what the exported C returns for quantize_input(x)."""
        from .quant import round_half_away

        s, zp = self.output_quant().qparams()
        with torch.no_grad():
            q = round_half_away(self(x) / s) + zp
        return to_graph_order(q, layout_of_rank(q.dim(), self)).numpy().astype(np.int64)

    def quantize_input(self, x: torch.Tensor) -> np.ndarray:
        """Float input batch (PyTorch layout) -> int8 codes in the exported graph's layout.

        4-D NCHW becomes NHWC, 3-D NCL (Conv1d input) becomes N,1,L,C; the
        rounding is the model's own, so these are the codes it computes on.
        """
        self.check_calibrated("quantize inputs")
        with torch.no_grad():
            q = self.input_quant().codes(x.float()).to(torch.int64)
        return to_graph_order(q, layout_of_rank(q.dim(), self)).numpy().astype(np.int8)

    def to_graph(self, example_input: torch.Tensor | None = None):
        """The integer Graph of the compressed model (built by dmxgen.frontends.torch_graph)."""
        if example_input is None:
            if not self.example_shape:
                raise DmxError("to_graph needs an example input (the model has not run on any input yet)")
            example_input = torch.zeros(self.example_shape)
        return _build_graph(self, example_input)


def value_quant(gm, node) -> ActQuant:
    """The quantizer whose grid the value of `node` (of the compressed GraphModule) is on."""
    mods = dict(gm.named_modules())
    while True:
        m = mods.get(node.target) if node.op == "call_module" else None
        if isinstance(m, ActQuant):
            return m
        if m is not None and hasattr(m, "out_quant"):
            return m.out_quant
        if m is not None and getattr(m, "in_quants", None):
            return m.in_quant
        node = node.all_input_nodes[0]


def _mark_aware(net: nn.Module, cfgs: dict[str, LayerConfig]) -> None:
    """Aware layers (see aware()) show the settings the config gave them."""
    for name, mod in net.named_modules():
        if getattr(type(mod), "_dmx_aware", False) and name in cfgs:
            mod.dmx_config = cfgs[name]
