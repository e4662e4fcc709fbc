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
from .bias_correction import SampleStore, corrections, restore_corrections, weights_fingerprint
from .bias_correction import correct as correct_biases
from .calibration import finish as finish_calibration
from .config import LayerConfig, LayerInfo, load_config
from .layers import QuantWeighted
from .layout import layout_of_rank, to_graph_order
from .multi_io import check_inputs, flatten, input_nodes, like, positional, returned
from .quant import ActQuant


GraphBuilder = Callable[["Model", torch.Tensor], object]
_graph_builder: list[GraphBuilder] = []  # filled by frontends/torch_graph.py when it is imported


def set_graph_builder(build: GraphBuilder) -> None:
    """The torch frontend registers its Model -> Graph function here. compress may not import the
    frontends (DESIGN.md: the frontend turns a compressed Model into a Graph, not the other way round),
    so the Model reaches it through this slot; dmxgen.api imports the frontend, which fills it."""
    _graph_builder[:] = [build]


def _build_graph(model: "Model", *examples: torch.Tensor):
    if not _graph_builder:
        raise DmxError("the torch frontend is not loaded: import dmxgen.api (or dmxgen.frontends.torch_graph) "
                       "to build the integer graph of a Model")
    return _graph_builder[0](model, *examples)


class Model(nn.Module):
    """Wraps `net`; after `transform` its forward runs the fake-quantized network.

    Before `transform` it is the float net unchanged. The compressed network
    shares the float net's parameters, so training either trains both. A net with
    nn.MultiheadAttention or Transformer encoder layers is rewritten into plain layers at the first
    `transform` (compress/attention.py, transformer.py): that copy becomes `float_net`, and the
    caller's module is left as it was.
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
        self.example_shapes: tuple[tuple[int, ...], ...] = ()  # every input's (several-input models)

    _export_checked = True  # set False by transform: the first calibration batch checks the export
    _calibrating_now = False
    _samples = None  # the first calibration samples, while calibrating (compress/bias_correction.py)
    _weights_seen = None  # the float weights' fingerprint at the first transform
    _trained = False  # the weights changed since: bias corrections are kept, not measured again

    def transform(self, config=None) -> "Model":
        """Apply a config (YAML path or dict; None = INT8 everywhere) to the float net.

        Masks are computed from the current weights; activation ranges are
        empty until `calibrating()` records them. What the layers alone show
        cannot be exported is refused here; what depends on tensor sizes, on
        the first calibration batch.
        """
        from .build import build_compressed, plain_layers

        rules = load_config(config)
        source = str(config) if isinstance(config, (str, Path)) else "config"
        # attention and transformer layers rewritten once: the copy is the float net from now on, so
        # training updates it and a second transform starts from the trained weights
        object.__setattr__(self, "float_net", plain_layers(self.float_net))
        kept = corrections(self.body) if self.transformed else {}
        if self._weights_seen is None:
            self._weights_seen = weights_fingerprint(self.float_net)
        gm, cfgs, layers = build_compressed(self.float_net, rules, source)
        self.body = gm
        restore_corrections(gm, kept)  # a second transform keeps what training adapted to
        self.layer_configs, self.layers = cfgs, layers
        self.transformed = True
        self.config_source = source
        self._export_checked = False
        _mark_aware(self.float_net, cfgs)
        return self

    def forward(self, *args, **kwargs):
        if kwargs and self.transformed:
            args, kwargs = positional(self.body, args, kwargs)
        tensors = bool(args) and all(isinstance(a, torch.Tensor) for a in args)
        if tensors:
            self.example_shape, self.example_shapes = tuple(args[0].shape), tuple(tuple(a.shape) for a in args)
            if self._calibrating_now and self._samples is not None:
                self._samples.add(args)  # for the bias correction run (compress/bias_correction.py)
        out = self.body(*args, **kwargs)
        if self._calibrating_now and not self._export_checked and tensors:
            self._export_checked = True
            self._check_export(*(a[:1] for a in args))
        return out

    def _check_export(self, *examples: torch.Tensor) -> None:
        """Build (and drop) the integer graph on the first calibration batch, so that what only sizes
        rule out (a reshape that would need a transpose, unequal adaptive windows, ...) is refused
        now with export's message, not first at dmxgen.save."""
        quants = list(self.act_quants().values())
        if not all(q.calibrated for q in quants):  # a branch this batch did not reach: save will tell
            return
        for q in quants:
            q.calibrating = False
        try:
            _build_graph(self, *examples)
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
        """Record activation ranges over the batches run inside the block (each quantizer's
        `activation_calibration`: the MSE-optimal clipping of their histogram by default, or min/max).

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
        # compress/bias_correction.py: measured while the weights are the ones transform() saw; once
        # they were trained, the training adapted to the corrections, which then stay as they are
        self._trained = self._trained or weights_fingerprint(self.float_net) != self._weights_seen
        corrected = [] if self._trained else [m for m in self.body.modules() if hasattr(m, "begin_bias_correction")]
        for layer in corrected:
            layer.begin_bias_correction()
        self._samples = SampleStore()
        self._calibrating_now = True
        try:
            with torch.no_grad():
                yield self
        finally:
            self._calibrating_now = False
            for q in quants:
                q.calibrating = False
            finish_calibration(quants, self.body)  # MSE / PERCENTILE: ranges from histograms (compress/calibration.py)
            samples, self._samples = self._samples.batch(), None
            for layer in corrected:
                if hasattr(layer, "end_bias_correction"):  # an LSTM or GRU: from its float calibration run
                    layer.end_bias_correction()
            weighted = [m for m in corrected if isinstance(m, QuantWeighted) and m.correct_bias]
            if weighted and samples is not None and not self.uncalibrated():
                correct_biases(self, weighted, samples)
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
        q = self.input_quants()
        if len(q) != 1:
            raise DmxError(f"the model has {len(q)} inputs; input_quant() needs one, use input_quants()")
        return q[0]

    def input_quants(self) -> list[ActQuant]:
        """The quantizer of every graph input, in forward()'s parameter order."""
        self._need_transform("find the input grids")
        return [value_quant(self.body, next(iter(p.users))) for p in input_nodes(self.body)]

    def output_quant(self) -> ActQuant:
        """The quantizer of the (single) model output: its grid is the exported output's."""
        self._need_transform("find the output grid")
        quants = self.output_quants()
        if len(quants) != 1:
            raise DmxError(f"the model has {len(quants)} outputs; output_quant() needs one, use output_quants()")
        return quants[0]

    def output_quants(self) -> list[ActQuant]:
        """The quantizer of every output, in graph order (compress/multi_io.py output_names)."""
        self._need_transform("find the output grids")
        return [value_quant(self.body, n) for n in flatten(returned(self.body))]

    def output_codes(self, *xs: torch.Tensor):
        """The model's outputs on xs (one tensor per input) as integer codes of the output grids, in
        the graph's layout: what the exported C returns for quantize_input(*xs). One array for a
        model returning a tensor; a tuple (a dict) of them for one returning a tuple or list (a dict)."""
        from .quant import round_half_away

        check_inputs(self.body, xs, "output_codes")
        with torch.no_grad():
            out = Model.forward(self, *xs)  # every output, also an EarlyExit's
        codes = []
        for o, q in zip(flatten(out), self.output_quants()):
            s, zp = q.qparams()
            c = round_half_away(o / s) + zp
            codes.append(to_graph_order(c, layout_of_rank(c.dim(), self)).numpy().astype(np.int64))
        return like(out, codes)

    def quantize_input(self, *xs: torch.Tensor):
        """Float input batches (PyTorch layout, one per input) -> int8 codes in the exported graph's
        layout: one array for a single-input model, a tuple of them, in forward()'s order, for several.

        4-D NCHW becomes NHWC, 3-D NCL (Conv1d input) becomes N,1,L,C; the
        rounding is the model's own, so these are the codes it computes on.
        """
        self.check_calibrated("quantize inputs")
        check_inputs(self.body, xs, "quantize_input")
        codes = []
        with torch.no_grad():
            for x, iq in zip(xs, self.input_quants()):
                q = iq.codes(x.float()).to(torch.int64)
                codes.append(to_graph_order(q, layout_of_rank(q.dim(), self)).numpy().astype(np.int8))
        return codes[0] if len(codes) == 1 else tuple(codes)

    def to_graph(self, *example_inputs: torch.Tensor):
        """The integer Graph of the compressed model (built by dmxgen.frontends.torch_graph), for one
        example tensor per input (default: zeros of the shapes the model last ran on)."""
        if not example_inputs or (len(example_inputs) == 1 and example_inputs[0] is None):
            shapes = getattr(self, "example_shapes", ()) or ((self.example_shape,) if self.example_shape else ())
            if not shapes:
                raise DmxError("to_graph needs an example input (the model has not run on any input yet)")
            example_inputs = tuple(torch.zeros(s) for s in shapes)
        return _build_graph(self, *example_inputs)


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
