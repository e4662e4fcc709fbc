"""The compression config: which format, sparsity and approximation each layer gets.

A config is a mapping (a YAML file or a dict) from a layer selector to its
settings. Selectors: a module's qualified name (`features.0`, or a functional
op's torch.fx node name such as `add_1`), `re:REGEX` (full match on the name)
or `type:CLASS` (`type:Conv2d`, `type:Linear`, `type:add`; `type:DepthwiseConv2d`
and `type:DepthwiseConv1d` for a conv with groups == in_channels != 1). A layer
takes the settings of every matching selector, type rules first (the depthwise
ones after the others), then regex rules, then its own name, each overriding the
fields it sets. See docs/compression.md.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import DmxError
from .calibration import DEFAULT as DEFAULT_CALIBRATION
from .calibration import Calibration, parse_calibration
from .formats import NumFormat, parse_format
from .functions import NONE, Approximation, parse_approximation
from .sparsity import DENSE, Sparseness, parse_sparseness

FIELDS = {
    "weight_format": ("weight", lambda s: parse_format(s, "weight")),
    "input_format": ("input", lambda s: parse_format(s, "input")),
    "output_format": ("output", lambda s: parse_format(s, "output")),
    "bias_format": ("bias", lambda s: parse_format(s, "bias")),
    "weight_sparseness": ("sparseness", parse_sparseness),
    "approximation_function": ("approximation", parse_approximation),
    "strict": ("strict", lambda v: _parse_bool(v, "strict")),
    "requantization": ("requantization", lambda v: _parse_requantization(v)),
    "activation_calibration": ("calibration", parse_calibration),
    "bias_correction": ("bias_correction", lambda v: _parse_bool(v, "bias_correction")),
}
REQUANTIZATIONS = {"MULTIPLIER": "multiplier", "POWER_OF_TWO": "power_of_two"}
# keys that apply wherever another one does: strict modifies weight_sparseness
MODIFIERS = {"strict": "weight_sparseness"}


def _parse_requantization(value) -> str:
    """MULTIPLIER (TFLite's 32-bit multiplier and shift) or POWER_OF_TWO (a rounded shift)."""
    key = str(value).strip().upper().replace(" ", "")
    if key not in REQUANTIZATIONS:
        raise ValueError(f"expected MULTIPLIER or POWER_OF_TWO, got {value!r}")
    return REQUANTIZATIONS[key]


def _parse_bool(value, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


@dataclass(frozen=True)
class LayerConfig:
    """Resolved settings of one layer; None formats mean the default (or SAME)."""

    weight: NumFormat | None = None
    input: NumFormat | None = None
    output: NumFormat | None = None
    bias: NumFormat | None = None
    sparseness: Sparseness = DENSE
    approximation: Approximation = NONE
    strict: bool = False  # an N:M pattern that does not fit the layer is an error, not a dense layer
    requantization: str = "multiplier"  # or power_of_two: shifts only (PSA-Compress's FPGA designs)
    calibration: Calibration = DEFAULT_CALIBRATION  # how the output's range is chosen (compress/calibration.py)
    bias_correction: bool = True  # calibration removes the mean error of rounded weights (compress/bias_correction.py)
    set_fields: frozenset = frozenset()
    warnings: tuple[str, ...] = ()  # what the transform changed from the config (an N:M pattern skipped)


@dataclass
class Rule:
    selector: str
    settings: dict  # attribute name -> parsed value
    fields: tuple[str, ...]  # config keys as written
    order: int = 0

    @property
    def rank(self) -> int:
        return 0 if self.selector.startswith("type:") else 1 if self.selector.startswith("re:") else 2

    @property
    def precedence(self) -> tuple:
        """Order of application: type, then regex, then name rules; a depthwise type after the others."""
        return self.rank, self.selector.lower().startswith("type:depthwise"), self.order


@dataclass
class LayerInfo:
    """What the tracer tells the config about one layer."""

    name: str
    type: str  # module class name, or the functional op's kind
    fields: frozenset  # config keys that apply to this layer
    note: str = ""  # why other keys do not apply (e.g. "is fused into conv1")
    module: str = ""  # the module's qualified name when it is called more than once under other names
    also: tuple[str, ...] = ()  # further type names it answers to (DepthwiseConv2d: type_aliases)


def type_aliases(m) -> tuple[str, ...]:
    """DepthwiseConv2d / DepthwiseConv1d for a Conv2d / Conv1d with groups == in_channels != 1."""
    from .aware import torch_class

    cls = torch_class(m).__name__
    if cls in ("Conv1d", "Conv2d") and m.groups == m.in_channels != 1:
        return (f"Depthwise{cls}",)
    return ()


def fit_sparseness(cfg: LayerConfig, layer, name: str) -> LayerConfig:
    """An N:M pattern needs the input dim to be a multiple of M: unless `strict`, a layer where it is
    not stays dense, with a warning (in the layer's config and from Python's warnings)."""
    sp, inner = cfg.sparseness, layer.weight.shape[1]
    if sp.kind != "nm" or cfg.strict or inner % sp.m == 0:
        return cfg
    msg = (f"layer {name!r} ({type(layer).__name__}): {sp.spelled()} skipped, its input dimension ({inner}) is "
           f"not a multiple of {sp.m}; the layer stays dense (strict: true makes this an error)")
    warnings.warn(msg, stacklevel=2)
    return replace(cfg, sparseness=DENSE, warnings=cfg.warnings + (msg,))


def load_config(config) -> list[Rule]:
    """Read and validate a config (path to YAML, or a mapping) into rules."""
    source = "config"
    if isinstance(config, (str, Path)):
        source = str(config)
        path = Path(config)
        if not path.exists():
            raise DmxError(f"{path}: no such config file")
        import yaml

        try:
            config = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise DmxError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise DmxError(f"{source}: expected a mapping from layer names to settings, got {type(config).__name__}")
    rules = []
    for order, (selector, body) in enumerate(config.items()):
        selector = str(selector)
        where = f"{source}: {selector!r}"
        if selector.startswith("re:"):
            try:
                re.compile(selector[3:])
            except re.error as e:
                raise DmxError(f"{where}: bad regular expression ({e})") from None
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise DmxError(f"{where}: expected a mapping of settings, got {body!r}")
        settings = {}
        for key, value in body.items():
            if key not in FIELDS:
                raise DmxError(f"{where}: unknown key {key!r}; known keys: {', '.join(FIELDS)}")
            attr, parse = FIELDS[key]
            try:
                settings[attr] = parse(value)
            except ValueError as e:
                raise DmxError(f"{where}: {key}: {e}") from None
        for key, base in MODIFIERS.items():
            if key in body and base not in body:
                raise DmxError(f"{where}: {key} needs {base} in the same rule")
        rules.append(Rule(selector, settings, tuple(body), order))
    return rules


def _matches(rule: Rule, layer: LayerInfo) -> bool:
    sel = rule.selector
    if sel.startswith("type:"):
        return sel[5:].lower() in {t.lower() for t in (layer.type, *layer.also)}
    if sel.startswith("re:"):
        return re.fullmatch(sel[3:], layer.name) is not None
    return sel in (layer.name, layer.module)


def resolve(rules: list[Rule], layers: list[LayerInfo], aliases: dict[str, str] | None = None,
            source: str = "config") -> dict[str, LayerConfig]:
    """Apply the rules to the traced layers; errors name the selector and the layer.

    `aliases` maps names that do not stand for a layer of their own (a folded
    BatchNorm, a fused ReLU) to a message saying where their settings belong.
    """
    aliases = aliases or {}
    out = {layer.name: LayerConfig() for layer in layers}
    for rule in sorted(rules, key=lambda r: r.precedence):
        where = f"{source}: {rule.selector!r}"
        if rule.rank == 2 and rule.selector in aliases and rule.selector not in out:
            raise DmxError(f"{where}: {aliases[rule.selector]}")
        hits = [layer for layer in layers if _matches(rule, layer)]
        if not hits:
            known = ", ".join(f"{x.name} ({x.type})" for x in layers)
            raise DmxError(f"{where} matches no layer of the model; layers: {known}")
        applied = set()
        for layer in hits:
            for key in rule.fields:
                attr = FIELDS[key][0]
                if MODIFIERS.get(key, key) not in layer.fields:
                    if rule.rank == 2:
                        why = f" ({layer.note})" if layer.note else ""
                        raise DmxError(f"{where}: {key} does not apply to layer {layer.name!r} "
                                       f"({layer.type}){why}; it takes: {', '.join(sorted(layer.fields)) or 'nothing'}")
                    continue
                applied.add(key)
                cfg = out[layer.name]
                out[layer.name] = replace(cfg, **{attr: rule.settings[attr]}, set_fields=cfg.set_fields | {key})
        missing = [k for k in rule.fields if k not in applied]
        if missing:
            raise DmxError(f"{where}: {', '.join(missing)} applies to none of the layers it matches "
                           f"({', '.join(x.name for x in hits)})")
    return out
