"""The report as one HTML page: inline CSS and SVG only, so it opens offline and fetches nothing."""
from __future__ import annotations

from html import escape

from . import plots

CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;padding:3px 6px}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px}dt{color:#555}dd{margin:0}
figure{margin:12px 0}figure svg{max-width:100%;height:auto}.note{color:#777;font-style:italic}
.ok{color:#1a7f37;font-weight:600}.bad{color:#c62828;font-weight:600}.none{color:#888}
"""


def _n(v, fmt: str = "{:,}") -> str:
    return "-" if v is None else fmt.format(v)


def _shape(s) -> str:
    return "x".join(map(str, s)) if s else "-"


def _placement(size: dict) -> str:
    where = [f"{what} in {size[key]}" for what, key in (("arena", "arena_region"), ("weights", "weights_region"))
             if size.get(key)]
    return f" ({', '.join(where)})" if where else ""


def _summary(s: dict, ee: dict | None = None) -> str:
    io = s.get("io_bytes") or {}
    size = s.get("firmware_size") or {}
    items = [
        ("model", s.get("model")), ("source", (s.get("source") or {}).get("path") or "-"),
        ("sha256", (s.get("source") or {}).get("sha256") or "-"),
        ("dmxgen", s.get("dmxgen_version")), ("weight format", s.get("format")), ("semantics", s.get("semantics")),
        ("layers", f"{s['layers']}: " + ", ".join(f"{k} x{v}" for k, v in s["ops"].items())),
        ("MACs", _n(s.get("macs"))),
        ("weight bytes", f"{_n(s.get('weight_bytes'))} stored, {_n(s.get('dense_weight_bytes'))} dense; "
                         f"{_n(s.get('param_bytes'))} of bias, multipliers and tables"),
        ("arena", f"{_n(s.get('arena_size'))} B; input {_n(io.get('input'))} B, output {_n(io.get('output'))} B "
                  f"(the caller's buffers); peak activation RAM {_n(s.get('peak_activation_ram'))} B"),
        ("firmware image", f"flash {_n(size.get('flash'))} B, RAM {_n(size.get('ram'))} B" + _placement(size)
         if size else "not measured (dmxgen bench OUT stores it)"),
        ("Cortex-M55 instructions", f"{_n(s.get('total_instructions'))} per inference, "
                                    f"{_n(s.get('instructions_per_mac'), '{:.2f}')} per MAC"
         if s.get("total_instructions") else "not measured (dmxgen bench OUT)"),
    ]
    if ee:
        items.append(("early exit", _early_exit_line(ee)))
    return "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in items) + "</dl>"


def _early_exit_line(ee: dict) -> str:
    """Policy, thresholds, the share per exit and, once bench has run, the averages and extra flash."""
    shares = ", ".join(f"{'final' if r['threshold'] is None else 'exit ' + str(r['exit'])} "
                       f"{_n(r['fraction'], '{:.1%}')}" for r in ee["exits"])
    line = (f"{ee['policy']} policy, thresholds {', '.join(map(str, ee['thresholds']))}; "
            f"{ee['vectors']} stored vectors leave at {shares}")
    b = ee.get("bench")
    if not b:
        return line + "; instructions not measured (dmxgen bench OUT)"
    return (line + f"; {_n(b.get('instructions_with_early_exit'))} Cortex-M55 instructions per inference on "
            f"average with early exit, {_n(b.get('instructions_without_early_exit'))} without; the exit branches "
            f"add {_n(b.get('exit_branches_extra_flash_bytes'))} flash bytes")


def _layer_table(layers: list[dict], tflm: list[dict] | None) -> str:
    kernels = [t["kernels"] for t in tflm or []]
    head = ["#", "layer", "op", "input", "output", "MACs", "format", "weights dense", "weights stored",
            "params", "zeros", "arena offset", "arena bytes", "instructions", "insns/MAC"]
    head += [f"TFLM {k}" for k in kernels]
    rows = []
    for r in layers:
        cells = [(r["index"], True), (r["name"], False), (r["op"], False),
                 (", ".join(_shape(s) for s in r["inputs"]) or "-", False), (_shape(r["output"]), False),
                 (_n(r["macs"] or None), True), (r["format"] or "-", False),
                 (_n(r["dense_weight_bytes"] or None), True), (_n(r["weight_bytes"] or None), True),
                 (_n(r["param_bytes"] or None), True),
                 (_n(r["sparsity"], "{:.1%}") if r["sparsity"] is not None else "-", True),
                 (_n(r["arena_offset"]) if r["storage"] == "arena" else r["storage"], True),
                 (_n(r["arena_bytes"]), True), (_n(r["instructions"]), True),
                 (_n(r["instructions_per_mac"], "{:.2f}"), True)]
        cells += [(_n((r.get("tflm") or {}).get(k)), True) for k in kernels]
        rows.append("<tr>" + "".join(f'<td class="n">{escape(str(c))}</td>' if num else f"<td>{escape(str(c))}</td>"
                                     for c, num in cells) + "</tr>")
    return (f'<table id="layers-table"><thead><tr>{"".join(f"<th>{escape(h)}</th>" for h in head)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _figure(fig_id: str, svg: str | None, missing: str) -> str:
    body = svg if svg else f'<p class="note">{escape(missing)}</p>'
    return f'<figure id="{fig_id}" class="{"plot" if svg else "plot-missing"}">{body}</figure>'


def _ladder(rows: list[dict]) -> str:
    cls = {"bit-exact": "ok", "MISMATCH": "bad"}
    body = "".join(f'<tr><td>{escape(r["what"])}</td><td class="{cls.get(r["status"], "none")}">'
                   f'{escape(r["status"])}</td><td>{escape(r["detail"])}</td></tr>' for r in rows)
    return (f'<table id="ladder-table"><thead><tr><th>step</th><th>result</th><th>detail</th></tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _tflm_totals(data: dict) -> str:
    s = data["summary"]
    rows = []
    for t in data["tflm"] or []:
        ratio = s["total_instructions"] / t["instructions"] if s.get("total_instructions") and t.get("instructions") \
            else None
        rows.append([f"TFLM {t['kernels']}", _n(t.get("instructions")), _n(ratio, "{:.2f}"), _n(t.get("flash")),
                     _n(t.get("ram")), _n(t.get("arena_used_bytes"))])
    if not rows:
        return ""
    body = "".join("<tr>" + "".join(f'<td class="n">{escape(c)}</td>' for c in r) + "</tr>" for r in rows)
    return ('<table id="tflm-table"><thead><tr><th>peer</th><th>instructions</th><th>dmxgen / peer</th>'
            f"<th>flash B</th><th>RAM B</th><th>arena_used_bytes</th></tr></thead><tbody>{body}</tbody></table>")


def render(data: dict) -> str:
    s, layers = data["summary"], data["layers"]
    no_bench = "no bench results in this folder: run `dmxgen bench OUT` to add Cortex-M55 instruction counts"
    sections = [
        f'<h1>dmxgen report: {escape(str(s["model"]))}</h1>',
        f'<section id="summary"><h2>Model</h2>{_summary(s, data.get("early_exit"))}</section>',
        f'<section id="layers"><h2>Layers</h2>{_layer_table(layers, data["tflm"])}'
        '<p class="note">MACs: conv, depthwise and fully connected layers. Arena offset: where the layer\'s output '
        'starts in the arena (alias: it shares its input\'s bytes). Instructions: QEMU -icount, not cycles.</p>'
        "</section>",
        '<section id="plots"><h2>Plots</h2>',
        _figure("plot-bytes", plots.bytes_per_layer(layers), ""),
        _figure("plot-arena", plots.arena_timeline(data["tensors"], len(layers), s.get("arena_size") or 0), ""),
        _figure("plot-instructions", plots.instructions_per_layer(layers), no_bench),
        _figure("plot-kinds", plots.instructions_per_kind(layers), no_bench),
    ]
    if data.get("early_exit"):
        sections.append(_figure("plot-exits", plots.exit_distribution(data["early_exit"]), ""))
    if data["tflm"]:
        sections.append(_figure("plot-tflm", plots.tflm_comparison(layers, data["tflm"]), no_bench))
    sections.append("</section>")
    if data["tflm"]:
        sections.append(f'<section id="tflm"><h2>TFLite Micro on the same core</h2>{_tflm_totals(data)}</section>')
    sections.append(f'<section id="ladder"><h2>Verification ladder</h2>{_ladder(data["ladder"])}</section>')
    title = escape(f"dmxgen report: {s['model']}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><style>{CSS}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n")
