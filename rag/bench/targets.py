"""The targets ``rag bench`` measures against, and what the measurements say about each."""
from __future__ import annotations

from rag.bench.common import fmt
from rag.index import FLAT_MAX_VECTORS

# Targets of the issue, for 2 CPU cores.
TARGET_SEARCH_P95_MS = 100.0
TARGET_SCALE_N = 1_000_000
TARGET_SCALE_P95_MS = 20.0
TARGET_SCALE_RECALL = 0.95
TARGET_FIRST_TOKEN_P50_MS = 2_000.0
TARGET_TOTAL_P50_MS = 10_000.0
TARGET_BUILD_S = 60.0


def targets(results: dict) -> list[dict]:
    rows = []
    pipe = results.get("pipeline", {})
    stages = pipe.get("stages", {})
    search_p95 = stages.get("search_ms", {}).get("p95")
    rows.append({"target": f"search p95 < {TARGET_SEARCH_P95_MS:.0f} ms (the report)",
                 "measured": f"{fmt(search_p95)} ms", "met": search_p95 is not None and search_p95 < TARGET_SEARCH_P95_MS,
                 "why": _search_why(stages)})
    build_s = pipe.get("build", {}).get("seconds")
    rows.append({"target": f"index build of the report < {TARGET_BUILD_S:.0f} s",
                 "measured": f"{fmt(build_s)} s ({pipe.get('build', {}).get('embedder', '?')})",
                 "met": None if build_s is None else build_s < TARGET_BUILD_S,
                 "why": _build_why(pipe)})
    ttft, total = stages.get("first_token_ms", {}).get("p50"), stages.get("total_ms", {}).get("p50")
    gen = pipe.get("generator", "?")
    rows.append({"target": f"time to first token p50 < {TARGET_FIRST_TOKEN_P50_MS / 1000:.0f} s ({gen})",
                 "measured": f"{fmt(ttft / 1000 if ttft else None, 2)} s",
                 "met": None if ttft is None else ttft < TARGET_FIRST_TOKEN_P50_MS,
                 "why": _ttft_why(stages) if ttft else "no model answered (extractive answers have no first token)"})
    rows.append({"target": f"whole answer p50 < {TARGET_TOTAL_P50_MS / 1000:.0f} s ({gen})",
                 "measured": f"{fmt(total / 1000 if total else None, 2)} s", "met": total is not None and total < TARGET_TOTAL_P50_MS,
                 "why": _total_why(pipe, results.get("generators", {}))})
    rows.append(_scale_target(results.get("scale", {})))
    return rows


def _search_why(stages: dict) -> str:
    parts = [f"{stages[k]['label']} p95 {fmt(stages[k]['p95'])} ms" for k in ("embed", "dense", "bm25", "fusion")
             if stages.get(k, {}).get("p95") is not None]
    return "; ".join(parts)


def _build_why(pipe: dict) -> str:
    counts = pipe.get("build", {}).get("counts", {})
    rate = next((e.get("texts_per_s") for e in pipe.get("embedders", []) if e.get("embedder") == pipe.get("build", {}).get("embedder")), None)
    texts = counts.get("vectors", 0) + counts.get("sentences", 0) * (counts.get("vectors", 0) // max(1, counts.get("chunks", 1)))
    return (f"{texts} texts embedded (chunks and sentences, both languages)"
            + (f" at ~{rate:.0f} chunk texts/s; sentences are shorter" if rate else "") + "; embedding is the build's cost")


def _ttft_why(stages: dict) -> str:
    return (f"retrieval + evidence p50 {fmt(stages['search_ms']['p50'], 0)} + {fmt(stages['evidence_ms']['p50'], 0)} ms, "
            f"then the model's prefill of the new prompt tokens p50 {fmt(stages['prefill_ms']['p50'], 0)} ms")


def _total_why(pipe: dict, gen: dict) -> str:
    stages = pipe.get("stages", {})
    decode = stages.get("decode_tps", {}).get("p50")
    parts = []
    if decode:
        parts.append(f"decode p50 {decode:.1f} tokens/s (memory-bandwidth limit {fmt(gen.get('bound_tps'))} tokens/s)")
    if pipe.get("retried"):
        parts.append(f"{pipe['retried']} of {len(pipe.get('questions', []))} answers failed a check and were written twice")
    if pipe.get("refused"):
        parts.append(f"{pipe['refused']} refusals (no generation) are in the distribution")
    return "; ".join(parts) or "extractive answers: no generation"


def _scale_target(scale: dict) -> dict:
    target = (f"{TARGET_SCALE_N:,} vectors: p95 < {TARGET_SCALE_P95_MS:.0f} ms with recall@10 ≥ {TARGET_SCALE_RECALL} "
              "(report questions; noisy copies: source found)")
    sizes = scale.get("sizes", [])
    at = [s for s in sizes if s["n"] >= TARGET_SCALE_N]
    size = at[0] if at else max(sizes, key=lambda s: s["n"], default=None)
    if size is None:
        return {"target": target, "measured": "not run", "met": None, "why": ""}
    verdicts = [f"report questions: {_best_config(size, 'report questions', 'recall')}",
                f"noisy copies: {_best_config(size, 'noisy copies', 'source_in_top10')}",
                f"random: {_best_config(size, 'random', 'recall')}"]
    measured = "; ".join(verdicts)
    why = ("random queries (and the 9 neighbours of a noisy copy after its source) have no real near neighbours: "
           "in 384 dimensions the exact top 10 are barely closer than the rest, and an approximate index needs a "
           "near-exhaustive search to find them")
    if not at:
        return {"target": target, "measured": f"not run (add --scale 1000000); at {size['n']:,}: {measured}",
                "met": None, "why": why + "; see the extrapolation in the scale section"}
    met = all("(meets)" in v for v in verdicts[:2])
    return {"target": target, "measured": measured, "met": met, "why": why}


def _best_config(size: dict, query_set: str, metric: str) -> str | None:
    """Fastest configuration whose ``metric`` meets the recall target on a query set, else the best one reached."""
    rows = [(r, r["query_sets"][query_set]) for r in size["indexes"]
            if r["query_sets"].get(query_set, {}).get(metric) is not None]
    if not rows:
        return None
    name = "recall@10" if metric == "recall" else "source@10"
    good = [(r, s) for r, s in rows if s[metric] >= TARGET_SCALE_RECALL]
    if good:
        row, stats = min(good, key=lambda x: x[1]["p95"])
        verdict = "meets" if stats["p95"] < TARGET_SCALE_P95_MS else "recall ok, too slow"
        return f"{row['index']} {row['param']} p95 {stats['p95']:.2f} ms, {name} {stats[metric]:.3f} ({verdict})"
    row, stats = max(rows, key=lambda x: x[1][metric])
    return f"best {name} {stats[metric]:.3f} ({row['index']} {row['param']}, p95 {stats['p95']:.2f} ms)"



def rule_check(scale: dict) -> list[str]:
    """What the measured numbers say about FLAT_MAX_VECTORS and HNSW's efSearch."""
    sizes = scale.get("sizes", [])
    notes = []
    flat = [(s["n"], min(r["query_sets"]["random"]["p95"] for r in s["indexes"] if r["index"] == "flat"))
            for s in sizes if any(r["index"] == "flat" for r in s["indexes"])]
    if flat:
        n, p95 = max(flat)  # the largest corpus: small ones measure call overhead, not the scan
        limit = int(n * TARGET_SCALE_P95_MS / p95) if p95 else None
        notes.append("Measured here: exact search p95 (the better of the thread settings) "
                     + ", ".join(f"{p:.1f} ms at {m:,}" for m, p in flat)
                     + (f"; linear in n, it stays under {TARGET_SCALE_P95_MS:.0f} ms up to about {limit:,} vectors "
                        f"(the rule switches at {FLAT_MAX_VECTORS:,})." if limit else "."))
    for size in sizes:
        parts = []
        for kind, knob in (("hnsw", "efSearch"), ("ivf", "nprobe")):
            rows = [r for r in size["indexes"] if r["index"] == kind]
            if not rows:
                continue
            ok = [r for r in rows
                  if r["query_sets"].get("report questions", {}).get("recall", 0) >= TARGET_SCALE_RECALL
                  and r["query_sets"].get("noisy copies", {}).get("source_in_top10", 0) >= TARGET_SCALE_RECALL]
            if ok:
                p95 = max(ok[0]["query_sets"][q]["p95"] for q in ("report questions", "noisy copies"))
                parts.append(f"{kind} needs {ok[0]['param']} (p95 {p95:.2f} ms; built in {ok[0]['build_s']:.1f} s, "
                             f"{ok[0]['index_mb']:.0f} MB)")
            else:
                parts.append(f"{kind}: no {knob} tried reaches it")
        if parts:
            notes.append(f"At {size['n']:,} vectors, for recall@10 ≥ {TARGET_SCALE_RECALL} on the report questions and "
                         f"the noisy copies' source found: " + "; ".join(parts) + ".")
    return notes


# --------------------------------------------------------------------------------------------------
# Entry point
