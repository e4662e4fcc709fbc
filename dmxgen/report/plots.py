"""The report's figures, drawn with matplotlib and returned as inline SVG text (no files, no fetches)."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

FORMAT_COLORS = {"dense": "#4c72b0", "csr": "#dd8452", "dcsr": "#55a868", "rle": "#c44e52", "dcsr_gather": "#8172b3"}
PARAM_COLOR = "#b0b0b0"
# Fixed ids and no dates make the SVG the same on every run for the same data.
matplotlib.rcParams.update({"svg.hashsalt": "dmxgen-report", "svg.fonttype": "none", "font.size": 9})


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _labels(layers: list[dict]) -> list[str]:
    return [f"{r['index']} {r['op']}" for r in layers]


def _width(n: int) -> float:
    return min(max(6.0, 0.28 * n + 2), 18.0)


def bytes_per_layer(layers: list[dict]) -> str:
    """Stacked bars: stored weight bytes coloured by format, then quantization parameters; dense bytes as ticks."""
    fig, ax = plt.subplots(figsize=(_width(len(layers)), 3.6))
    x = range(len(layers))
    formats = [r.get("format") or "-" for r in layers]
    for fmt, color in FORMAT_COLORS.items():
        ax.bar(x, [r["weight_bytes"] if f == fmt else 0 for r, f in zip(layers, formats)], color=color,
               label=f"weights, {fmt}" if fmt in formats else None)
    ax.bar(x, [r["param_bytes"] for r in layers], bottom=[r["weight_bytes"] for r in layers], color=PARAM_COLOR,
           label="bias, multipliers, tables")
    dense = [(i, r["dense_weight_bytes"]) for i, r in enumerate(layers) if r["dense_weight_bytes"]]
    if dense:
        ax.scatter([i for i, _ in dense], [b for _, b in dense], marker="_", s=120, color="black", zorder=3,
                   label="weights if dense")
    ax.set_xticks(list(x), _labels(layers), rotation=90, fontsize=7)
    ax.set_ylabel("bytes in flash")
    ax.set_title("Bytes per layer by storage format")
    ax.legend(fontsize=7, loc="best")
    ax.grid(axis="y", alpha=0.3)
    return _svg(fig)


def arena_timeline(tensors: list[dict], n_ops: int, arena_size: int) -> str:
    """The memory plan: every arena buffer as a rectangle over the ops it lives (x) and its bytes (y)."""
    fig, ax = plt.subplots(figsize=(_width(n_ops), 3.8))
    seen = set()
    colors = plt.get_cmap("tab20").colors
    for t in tensors:
        if t.get("storage") != "arena" or t.get("offset") is None or t.get("buffer") in seen:
            continue
        seen.add(t.get("buffer"))
        start, end = max(int(t["first_op"]), 0), min(int(t["last_op"]), n_ops - 1)
        scratch = str(t.get("name", "")).startswith("scratch:")
        ax.add_patch(Rectangle((start - 0.45, t["offset"]), end - start + 0.9, t["bytes"],
                               facecolor="#999999" if scratch else colors[len(seen) % len(colors)],
                               edgecolor="black", linewidth=0.4, alpha=0.85, hatch="//" if scratch else None))
    ax.axhline(arena_size, color="#c44e52", linestyle="--", linewidth=1, label=f"arena size {arena_size:,} B")
    ax.set_xlim(-0.8, n_ops - 0.2)
    ax.set_ylim(0, max(arena_size, 1) * 1.08)
    ax.set_xlabel("op index (a buffer lives from the op that writes it to the last that reads it)")
    ax.set_ylabel("arena offset (bytes)")
    ax.set_title("Arena memory timeline (hatched: a kernel's scratch)")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return _svg(fig)


def instructions_per_layer(layers: list[dict]) -> str | None:
    """Instructions on the emulated Cortex-M55 per layer, coloured by weight format."""
    if not any(r["instructions"] is not None for r in layers):
        return None
    fig, ax = plt.subplots(figsize=(_width(len(layers)), 3.6))
    ax.bar(range(len(layers)), [r["instructions"] or 0 for r in layers],
           color=[FORMAT_COLORS.get(r.get("format") or "", PARAM_COLOR) for r in layers])
    ax.set_xticks(range(len(layers)), _labels(layers), rotation=90, fontsize=7)
    ax.set_ylabel("instructions")
    ax.set_title("Instructions per layer on the Cortex-M55 (QEMU -icount; colour: weight format)")
    ax.grid(axis="y", alpha=0.3)
    return _svg(fig)


def instructions_per_kind(layers: list[dict]) -> str | None:
    """Instructions summed per op kind, largest first."""
    kinds: dict[str, int] = {}
    for r in layers:
        if r["instructions"] is not None:
            kinds[r["op"]] = kinds.get(r["op"], 0) + r["instructions"]
    if not kinds:
        return None
    order = sorted(kinds, key=kinds.get)
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(order) + 1.2))
    ax.barh(order, [kinds[k] for k in order], color="#4c72b0")
    total = sum(kinds.values())
    for i, k in enumerate(order):
        ax.text(kinds[k], i, f" {100 * kinds[k] / total:.1f}%", va="center", fontsize=7)
    ax.set_xlabel("instructions")
    ax.set_title("Instructions per layer kind")
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig)


def tflm_comparison(layers: list[dict], tflm: list[dict]) -> str | None:
    """Per layer: dmxgen's instructions next to each TFLM kernel set's, for the matched operators."""
    if not tflm or not any(r["instructions"] is not None for r in layers):
        return None
    fig, ax = plt.subplots(figsize=(_width(len(layers)), 3.8))
    series = [("dmxgen", [r["instructions"] for r in layers])]
    series += [(f"TFLM {s['kernels']}", [r.get("tflm", {}).get(s["kernels"]) for r in layers]) for s in tflm]
    width = 0.8 / len(series)
    for k, (label, values) in enumerate(series):
        ax.bar([i + (k - (len(series) - 1) / 2) * width for i in range(len(layers))],
               [v or 0 for v in values], width=width, label=label)
    ax.set_yscale("symlog", linthresh=100)
    ax.set_xticks(range(len(layers)), _labels(layers), rotation=90, fontsize=7)
    ax.set_ylabel("instructions (log)")
    ax.set_title("Per layer: dmxgen vs TFLite Micro on the same emulated Cortex-M55")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return _svg(fig)


def exit_distribution(ee: dict) -> str:
    """One bar per exit (the final classifier last): the share of stored vectors that leave there,
    annotated with their count and, when bench measured it, the instructions per inference there."""
    rows = ee["exits"]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(rows) + 1.5), 3.4))
    shares = [100 * (r["fraction"] or 0) for r in rows]
    ax.bar(range(len(rows)), shares, color=["#4c72b0"] * (len(rows) - 1) + ["#c44e52"])
    for i, r in enumerate(rows):
        note = f"{r['vectors']} vectors"
        if r["instructions"] is not None:
            note += f"\n{r['instructions']:,} insns"
        ax.text(i, shares[i], note, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(rows)), [f"exit {r['exit']}\n{r['entry']}" + (f" (t={r['threshold']})"
                                     if r["threshold"] is not None else "") for r in rows], fontsize=7)
    ax.set_ylim(0, max(shares + [1]) * 1.25)
    ax.set_ylabel("stored vectors (%)")
    ax.set_title(f"Early exit taken ({ee['policy']} policy, {ee['vectors']} stored vectors)")
    ax.grid(axis="y", alpha=0.3)
    return _svg(fig)
