"""EarlyExit: a backbone with exit heads on named intermediate tensors, one dmxgen Model.

    ee = EarlyExit(backbone, exits={"pool1": head}, policy="margin")
    ...train the backbone: ee(x) is the final logits...
    train_exits(ee, loader, epochs=5)                 # heads only, backbone frozen
    ee.transform(None)                                # INT8 everywhere, heads included
    with ee.calibrating():
        ee(x_train)
    ee.policy = choose_thresholds(ee, val_loader, max_accuracy_drop=0.01).policy
    exits, codes = ee.decide(x)                       # what the integer reference and the C return

The backbone is traced with torch.fx and each head is inlined right after the
tensor it reads, so the network is one traced graph whose outputs are every
head's logits (shallowest first) and the final logits. `Model` then
fake-quantizes the heads exactly as it does the backbone's layers, and
`to_graph` is the integer Graph with one entry point per exit
(graph/early_exit.py). The confidence rule is graph/exit_policy.py's.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import DmxError
from ..graph.early_exit import with_exit_entries, with_policy
from ..graph.exit_policy import NEVER, ExitPolicy, check_kind, confidences, exits_taken, predicted_classes
from .aware import torch_nn
from .exit_thresholds import ThresholdChoice, select_thresholds
from .layers import QuantWeighted
from .model import Model, value_quant
from .quant import round_half_away
from .trace import _Tracer, trace


def _exit_node(gm: fx.GraphModule, name: str) -> fx.Node:
    """The node of the traced backbone whose value the exit named `name` reads: a module's output
    (a leaf's call, or a container's last node) or an fx node."""
    nodes = [n for n in gm.graph.nodes]
    calls = [n for n in nodes if n.op == "call_module" and n.target == name]
    if len(calls) > 1:
        raise DmxError(f"exit {name!r}: module {name!r} is called {len(calls)} times (fx nodes "
                       f"{', '.join(n.name for n in calls)}); name one of those nodes instead")
    inside = [n for n in nodes if any(path == name for path, _ in (n.meta.get("nn_module_stack") or {}).values())]
    by_name = {n.name: n for n in nodes}
    node = calls[0] if calls else (inside[-1] if inside else by_name.get(name))
    if node is None:
        known = [m for m, _ in gm.named_modules() if m][:8]
        raise DmxError(f"exit {name!r}: the backbone has no module or torch.fx node of that name "
                       f"(modules: {', '.join(known) or 'none'}{' ...' if len(known) == 8 else ''})")
    output = next(n for n in nodes if n.op == "output")
    if node.op == "placeholder" or node in output.all_input_nodes:
        raise DmxError(f"exit {name!r}: {'the model input' if node.op == 'placeholder' else 'the backbone output'}"
                       " is not an intermediate tensor an exit head can read")
    return node


def _copy(g: fx.Graph, node: fx.Node, env: dict, prefix: str) -> fx.Node:
    new = g.node_copy(node, lambda a: env[a])
    if node.op in ("call_module", "get_attr"):
        new.target = f"{prefix}.{node.target}" if node.target else prefix
    return new


def _inline_head(g: fx.Graph, head: nn.Module, prefix: str, x: fx.Node, name: str) -> fx.Node:
    """The head's traced calls appended to g, reading x; its output node."""
    if _Tracer(set()).is_leaf_module(head, ""):
        return g.call_module(prefix, (x,))
    env: dict = {}
    out = None
    for n in trace(head, set()).graph.nodes:
        if n.op == "placeholder":
            if env:
                raise DmxError(f"exit {name!r}: its head takes more than one input")
            env[n] = x
        elif n.op == "output":
            out = fx.node.map_arg(n.args[0], lambda a: env[a])
        else:
            env[n] = _copy(g, n, env, prefix)
    if not isinstance(out, fx.Node):
        raise DmxError(f"exit {name!r}: its head must return one tensor (the logits)")
    return out


def joint_net(backbone: nn.Module, exits: dict[str, nn.Module]) -> tuple[fx.GraphModule, list[str]]:
    """(one GraphModule computing (exit logits..., final logits), the exit names shallowest first)."""
    gm = trace(backbone, set())
    points = {name: _exit_node(gm, name) for name in exits}
    position = {n: i for i, n in enumerate(gm.graph.nodes)}
    names = sorted(exits, key=lambda name: position[points[name]])
    root = nn.Module()
    root.backbone = backbone
    root.heads = nn.ModuleDict({f"exit{k}": exits[name] for k, name in enumerate(names)})
    g = fx.Graph()
    env: dict = {}
    head_outs: list = [None] * len(names)
    for node in gm.graph.nodes:
        if node.op == "output":
            final = node.args[0]
            if isinstance(final, (list, tuple)) and len(final) == 1:
                final = final[0]
            if not isinstance(final, fx.Node):
                raise DmxError("an early-exit backbone must return one tensor (the final logits)")
            g.output((*head_outs, env[final]))
            continue
        env[node] = _copy(g, node, env, "backbone")
        for k, name in enumerate(names):
            if points[name] is node:
                head_outs[k] = _inline_head(g, exits[name], f"heads.exit{k}", env[node], name)
    g.lint()
    return fx.GraphModule(root, g, class_name="EarlyExitNet"), names


def _ancestors(node: fx.Node) -> set:
    seen, todo = set(), [node]
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo += n.all_input_nodes
    return seen


def _policy(policy, heads: int) -> ExitPolicy:
    if policy is None:
        policy = "margin"
    if isinstance(policy, str):
        policy = ExitPolicy(check_kind(policy), (NEVER[policy],) * heads)
    if not isinstance(policy, ExitPolicy):
        raise DmxError(f"policy must be 'margin', 'softmax' or an ExitPolicy, got {type(policy).__name__}")
    if len(policy.thresholds) != heads:
        raise DmxError(f"the early-exit policy has {len(policy.thresholds)} threshold(s) for {heads} exit(s)")
    return policy


class EarlyExit(Model):
    """A Model whose forward is the final logits (every exit's too with all_exits=True).

    `exit_names` are the exits shallowest first; exit k is the k-th head, exit
    len(exit_names) the final classifier. The backbone and heads keep their
    parameters (training either trains this). Layer names in a config are
    "backbone.<name>" and "heads.exit<k>.<name>".
    """

    def __init__(self, backbone: nn.Module, exits: dict, policy=None, example_input: torch.Tensor | None = None):
        if isinstance(backbone, Model):
            raise DmxError("EarlyExit wraps the float backbone (it is itself a dmxgen.Model)")
        if not isinstance(backbone, nn.Module):
            raise DmxError(f"EarlyExit needs a torch.nn.Module backbone, got {type(backbone).__name__}")
        if not isinstance(exits, dict) or not exits:
            raise DmxError("EarlyExit needs exits={'<module or fx node name>': head_module, ...}")
        for name, head in exits.items():
            if not isinstance(head, nn.Module):
                raise DmxError(f"exit {name!r}: its head must be a torch.nn.Module, got {type(head).__name__}")
        net, names = joint_net(backbone, exits)
        super().__init__(net)
        self.exit_names = names
        object.__setattr__(self, "backbone", backbone)  # the same modules as body's: not registered twice
        object.__setattr__(self, "heads", [exits[n] for n in names])
        self.policy = _policy(policy, len(names))
        self.return_all = False
        if example_input is not None:
            was = self.training
            self.eval()
            with torch.no_grad():
                self(example_input[:1], all_exits=True)
            self.train(was)

    def forward(self, x, all_exits: bool | None = None):
        outs = tuple(super().forward(x))
        self._check_logits(outs)
        return outs if (self.return_all if all_exits is None else all_exits) else outs[-1]

    def _check_logits(self, outs: tuple) -> None:
        final = outs[-1]
        if final.dim() != 2:
            raise DmxError(f"the backbone returns shape {list(final.shape)}, not one logit vector per sample")
        for name, o in zip(self.exit_names, outs[:-1]):
            if o.dim() != 2:
                raise DmxError(f"exit {name!r}: its head returns shape {list(o.shape)}, not one logit vector per "
                               "sample ([N, classes])")
            if o.shape[1] != final.shape[1]:
                raise DmxError(f"exit {name!r}: its head gives {o.shape[1]} logits, the final classifier "
                               f"{final.shape[1]}")

    # -- integer facts ---------------------------------------------------------
    def output_quants(self) -> list:
        """The quantizer of every output (the exits', then the final logits)."""
        self._need_transform("find the output grids")
        out = next(n for n in self.body.graph.nodes if n.op == "output").args[0]
        return [value_quant(self.body, n) for n in out]

    def logit_codes(self, x: torch.Tensor) -> list[np.ndarray]:
        """Every output's int8 codes on x ([N, classes] int64 each): what the integer graph computes."""
        self.check_calibrated("compute logit codes")
        was = self.training
        self.eval()
        try:
            with torch.no_grad():
                outs = self(x, all_exits=True)
        finally:
            self.train(was)
        codes = []
        for o, q in zip(outs, self.output_quants()):
            s, zp = q.qparams()
            codes.append((round_half_away(o / s) + zp).numpy().astype(np.int64))
        return codes

    def exit_scales(self) -> list[float]:
        """The exit heads' output scales (what the softmax policy reads)."""
        return [q.qparams()[0] for q in self.output_quants()[:-1]]

    def decide(self, x: torch.Tensor, policy: ExitPolicy | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(exit taken per input, the int8 logits of that exit): the early-exit model's answer."""
        policy = _policy(policy if policy is not None else self.policy, len(self.exit_names))
        codes = self.logit_codes(x)
        taken = exits_taken(policy, codes[:-1], self.exit_scales())
        return taken, np.stack(codes)[taken, np.arange(len(taken))]

    def to_graph(self, example_input: torch.Tensor | None = None):
        """The integer Graph with the entry points exit0 ... exit<K-1>, final, carrying ee.policy
        (Graph.early_exit; dmxgen.save stores it, so `dmxgen export` needs nothing else)."""
        return self.exit_graph(super().to_graph(example_input))

    def exit_graph(self, graph):
        """The traced integer graph with the exit entries declared and ee.policy attached."""
        graph = with_exit_entries(graph, len(self.exit_names))
        return with_policy(graph, self.policy.kind, self.policy.thresholds)

    # -- partial runs and costs -------------------------------------------------
    def _output_nodes(self) -> list[fx.Node]:
        return list(next(n for n in self.body.graph.nodes if n.op == "output").args[0])

    def run_to_exit(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Exit k's logits (k = len(exit_names): the final ones), computing only what they need."""
        cache = self.__dict__.setdefault("_partials", {})
        if cache.get("body") is not self.body:
            cache.clear()
            cache["body"] = self.body
        if k not in cache:
            out = self._output_nodes()[k]
            keep = _ancestors(out)
            g, env = fx.Graph(), {}
            for n in self.body.graph.nodes:
                if n in keep:
                    env[n] = g.node_copy(n, lambda a: env[a])
            g.output(env[out])
            cache[k] = fx.GraphModule(self.body, g)
        return cache[k](x)

    def exit_costs(self, example_input: torch.Tensor) -> list[int]:
        """MACs per input of exiting at each exit, then of the final classifier: the conv and linear
        layers of the stages run and of every head evaluated (dense counts: pruned weights included)."""
        was = self.training
        self.eval()
        with torch.no_grad():
            ShapeProp(self.body).propagate(example_input[:1].float())
        self.train(was)
        mods = dict(self.body.named_modules())
        macs = {n: _node_macs(n, mods) for n in self.body.graph.nodes}
        costs, run = [], set()
        for out in self._output_nodes():
            run |= _ancestors(out)
            costs.append(sum(macs[n] for n in run))
        return costs


def _node_macs(node: fx.Node, mods: dict) -> int:
    if node.op != "call_module" or "tensor_meta" not in node.meta:
        return 0
    m = mods[node.target]
    layer = m.layer if isinstance(m, QuantWeighted) else m
    out = int(np.prod(node.meta["tensor_meta"].shape[1:]))
    if isinstance(layer, torch_nn.Linear):
        return out * layer.in_features
    if isinstance(layer, (torch_nn.Conv1d, torch_nn.Conv2d)):
        return out * (layer.in_channels // layer.groups) * int(np.prod(layer.kernel_size))
    return 0


# -- training ----------------------------------------------------------------
def simulate_exit(ee: EarlyExit, x: torch.Tensor, generator: torch.Generator | None = None,
                  include_final: bool = True) -> tuple[int, torch.Tensor]:
    """(k, exit k's logits) for an exit picked at random, deeper stages not computed."""
    choices = len(ee.exit_names) + (1 if include_final else 0)
    k = int(torch.randint(choices, (1,), generator=generator))
    return k, ee.run_to_exit(x, k)


def train_exits(ee: EarlyExit, loader, epochs: int, lr: float = 1e-3, freeze_backbone: bool = True,
                simulate: bool = False, seed: int = 0) -> list[float]:
    """Train on (x, y) batches; returns the mean loss per epoch.

    freeze_backbone (the original method): only the heads learn; the backbone's weights and
    BatchNorm statistics stay as they are, and the loss is the sum of the heads' cross-entropies.
    Otherwise (joint) the final classifier's joins it and every parameter learns. simulate: each
    batch trains one exit picked at random (simulate_exit), deeper stages dropped.
    """
    if not isinstance(ee, EarlyExit):
        raise DmxError(f"train_exits needs a dmxgen.EarlyExit, got {type(ee).__name__}")
    backbone = list(ee.backbone.parameters())
    frozen = {id(p) for p in backbone}
    params = [p for h in ee.heads for p in h.parameters() if id(p) not in frozen] if freeze_backbone \
        else list(ee.parameters())
    if not params:
        raise DmxError("train_exits: the exit heads have no parameters to train")
    was = [p.requires_grad for p in backbone]
    if freeze_backbone:
        for p in backbone:
            p.requires_grad_(False)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(params, lr=lr)
    history = []
    try:
        for _ in range(epochs):
            ee.train()
            if freeze_backbone:
                ee.backbone.eval()
            total, batches = 0.0, 0
            for x, y in loader:
                if simulate:
                    _, logits = simulate_exit(ee, x, g, include_final=not freeze_backbone)
                    loss = F.cross_entropy(logits, y)
                else:
                    outs = ee(x, all_exits=True)
                    loss = sum(F.cross_entropy(o, y) for o in (outs[:-1] if freeze_backbone else outs))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total, batches = total + float(loss.detach()), batches + 1
            history.append(total / max(1, batches))
    finally:
        for p, r in zip(backbone, was):
            p.requires_grad_(r)
        ee.eval()
    return history


def choose_thresholds(ee: EarlyExit, val_loader, target_accuracy: float | None = None,
                      target_cost: float | None = None, max_accuracy_drop: float | None = None,
                      kind: str | None = None) -> ThresholdChoice:
    """Thresholds (of ee.policy's kind unless `kind`) from a validation loader of (x, y) batches,
    for one target: accuracy, average MACs per input, or at most max_accuracy_drop below the
    final classifier's accuracy. Does not change ee.policy (assign choice.policy)."""
    kind = check_kind(kind or ee.policy.kind)
    codes, labels, example = None, [], None
    for x, y in val_loader:
        example = x[:1] if example is None else example
        batch = ee.logit_codes(x)
        codes = batch if codes is None else [np.concatenate([a, b]) for a, b in zip(codes, batch)]
        labels.append(np.asarray(y))
    if codes is None:
        raise DmxError("choose_thresholds: the validation loader is empty")
    scales = ee.exit_scales()
    conf = [confidences(kind, c, s) for c, s in zip(codes[:-1], scales)]
    preds = [predicted_classes(c) for c in codes]
    return select_thresholds(kind, conf, preds, np.concatenate(labels), ee.exit_costs(example),
                             target_accuracy, target_cost, max_accuracy_drop)
