"""The plots of docs/benchmarks.md, one function per plot, written next to the Markdown."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rag.bench.targets import TARGET_SCALE_P95_MS, TARGET_SCALE_RECALL


def write_plots(results: dict, folder: Path) -> list[str]:
    """Every plot the results have data for; returns the file names written (none without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        results["plots_note"] = "matplotlib is not installed: pip install matplotlib"
        return []
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (("bench-stages.png", _stages), ("bench-scale.png", _scale),
                       ("bench-generators.png", _generators), ("bench-concurrency.png", _concurrency)):
        fig = draw(plt, results)
        if fig is None:
            continue
        fig.tight_layout()
        fig.savefig(folder / name, dpi=110)
        plt.close(fig)
        written.append(name)
    return written


def _stages(plt, results: dict):
    stages = results.get("pipeline", {}).get("stages", {})
    ms_stages = [s for s in stages.values() if s["unit"] == "ms" and s["p50"]]
    if not ms_stages:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(ms_stages) + 1.2))
    y = np.arange(len(ms_stages))
    ax.barh(y - 0.2, [s["p50"] for s in ms_stages], 0.4, label="p50")
    ax.barh(y + 0.2, [s["p95"] for s in ms_stages], 0.4, label="p95")
    ax.set_yticks(y, [s["label"] for s in ms_stages])
    ax.set_xscale("log")
    ax.set_xlabel("milliseconds (log scale)")
    ax.invert_yaxis()
    ax.set_title(f"Per-question stages, generator {results['pipeline'].get('generator')}")
    ax.legend()
    return fig


def _scale(plt, results: dict):
    scale = results.get("scale", {})
    if not scale.get("sizes"):
        return None
    names = list(scale["sizes"][0]["indexes"][0]["query_sets"])
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, name in zip(axes, names):
        for number, size in enumerate(scale["sizes"]):
            for kind, marker, style in (("flat", "s", ""), ("hnsw", "o", "-"), ("ivf", "^", "--")):
                rows = [r for r in size["indexes"] if r["index"] == kind]
                ax.plot([r["query_sets"][name]["p95"] for r in rows], [r["query_sets"][name]["recall"] for r in rows],
                        marker=marker, linestyle=style or "none", color=f"C{number}", label=f"{kind} {size['n']:,}")
        ax.axhline(TARGET_SCALE_RECALL, color="grey", linestyle=":")
        ax.axvline(TARGET_SCALE_P95_MS, color="grey", linestyle=":")
        ax.set_xscale("log")
        ax.set_xlabel("single-query p95 (ms, log)")
        ax.set_title(f"{name} queries")
    axes[0].set_ylabel("recall@10 vs exact")
    axes[-1].legend(fontsize=7)
    return fig


def _generators(plt, results: dict):
    gens = [b for b in results.get("generators", {}).get("backends", []) if b.get("decode_tps")]
    if not gens:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(gens) + 1.5))
    y = np.arange(len(gens))
    ax.barh(y, [g["decode_tps"] for g in gens], 0.5, label="measured decode")
    ax.scatter([g["bound_tps"] for g in gens], y, color="black", marker="|", s=300, label="memory-bandwidth limit")
    ax.set_yticks(y, [f"{g['backend']}: {g['config']}" for g in gens])
    ax.invert_yaxis()
    ax.set_xlabel("tokens/s")
    ax.legend()
    ax.set_title("Decode speed of the shipped model")
    return fig


def _concurrency(plt, results: dict):
    conc = results.get("concurrency", [])
    if not conc:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    for generator in sorted({c["generator"] for c in conc}):
        rows = [c for c in conc if c["generator"] == generator]
        left.plot([c["threads"] for c in rows], [c["throughput_qps"] for c in rows], marker="o", label=generator)
        right.plot([c["threads"] for c in rows], [c["p95"] for c in rows], marker="o", label=generator)
    left.set_xlabel("questions at once")
    left.set_ylabel("questions/s")
    right.set_xlabel("questions at once")
    right.set_ylabel("latency p95 (ms)")
    right.set_yscale("log")
    left.legend()
    return fig
