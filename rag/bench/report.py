"""docs/benchmarks.md from the results of ``rag bench``: one function per section."""
from __future__ import annotations

from rag.bench.common import fmt
from rag.bench.targets import TARGET_SCALE_N, TARGET_SCALE_P95_MS, rule_check
from rag.index import FLAT_MAX_VECTORS


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(results: dict, plots: list[str]) -> str:
    lines = _header_md(results) + _machine_md(results["machine"]) + _targets_md(results["targets"])
    sections = (("pipeline", _pipeline_md), ("generators", _generators_md), ("scale", _scale_md),
                ("concurrency", _concurrency_md))
    for key, render in sections:
        if results.get(key):
            lines += render(results[key], plots, results)
    if results.get("plots_note"):
        lines += [f"Plots: {results['plots_note']}", ""]
    return "\n".join(lines).rstrip() + "\n"


def _header_md(results: dict) -> list[str]:
    meta = results["machine"]
    lines = ["# Benchmarks", "",
             f"Written by `rag bench` ({' '.join(results['command'])}) on {meta['started_at']}; "
             f"the run took {results['seconds'] / 60:.1f} min. Re-run it to refresh every number and plot here.", ""]
    if results["options"]["quick"]:
        lines += ["**Quick run (tiny sizes, for the tests): these numbers mean nothing.**", ""]
    if results.get("note"):
        lines += [f"**Note:** {results['note']}", ""]
    return lines


def _machine_md(meta: dict) -> list[str]:
    lines = ["## Machine", ""]
    lines += table(["", ""], [
        ["CPU", meta["cpu_model"]], ["cores (usable)", f"{meta['cores']} ({meta['cores_usable']})"],
        ["RAM", f"{meta['ram_gb']} GB"], ["OS", meta["os"]], ["Python", meta["python"]],
        ["threads", f"faiss {meta.get('faiss_threads', '?')}, torch {meta.get('torch_threads', '?')}"],
        ["load average (1, 5, 15 min)", f"start {meta['load_average_start']}, end {meta.get('load_average_end')}"],
        *[[name, version] for name, version in meta["libraries"].items()]])
    lines += ["", "A load average above the core count means other work shared the CPUs: timings are then "
              "inflated; each section also records the load before and after it.", ""]
    return lines


def _targets_md(targets: list[dict]) -> list[str]:
    lines = ["## Targets (2 CPU cores)", ""]
    lines += table(["target", "measured", "met", "why / what it is made of"],
                    [[t["target"], t["measured"], "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**"), t["why"]]
                     for t in targets])
    lines += [""]
    return lines


def _pipeline_md(pipe: dict, plots: list[str], results: dict) -> list[str]:
    lines = ["## 1. Pipeline", "",
              f"- Pipeline load (index, embedder, BM25 and evidence tables): {pipe['pipeline_load_s']:.1f} s; "
              f"generator load: {fmt(pipe.get('generator_load_s'))} s.",
              _build_line(pipe["build"]),
              f"- Memory: RSS {fmt(pipe.get('rss_after_load_mb'), 0)} MB with the pipeline loaded (index, "
              f"embedder, BM25 and evidence tables), {fmt(pipe.get('rss_after_generator_mb'), 0)} MB with the "
              f"generator too; peak RSS after this section (every embedder loaded for the throughput test): "
              f"**{pipe['peak_rss_mb']:.0f} MB**.",
              f"- Load average before / after: {pipe['load_average_before']} / {pipe['load_average_after']}.", "",
              "Embedding throughput (the chunk texts the build embeds, both languages):", ""]
    lines += table(["embedder", "texts", "first call (s)", "seconds", "chunk texts/s"],
                    [[e["embedder"], e.get("texts", "-"), fmt(e.get("first_call_s"), 2), fmt(e.get("seconds"), 2),
                      fmt(e.get("texts_per_s"))] if e.get("available") else
                     [e["embedder"], "not installed" if not e.get("error") else e["error"], "", "", ""]
                     for e in pipe["embedders"]])
    n = len(pipe["questions"])
    lines += ["", f"Per question, {n} development questions, generator `{pipe['generator']}`: "
              f"{pipe['answered_by_model']} answered by the model, {pipe['retried']} retried after a failed check, "
              f"{pipe['extractive']} extractive, {pipe['refused']} refused. Refusals stop after evidence "
              "selection; model stages cover the questions that reached the model.", ""]
    if pipe.get("fallback_reasons"):
        lines += ["Why answers fell back to the quoted evidence: " + "; ".join(
            f"{reason} ({count}×)" for reason, count in pipe["fallback_reasons"].items()) + ".", ""]
    lines += table(["stage", "n", "p50", "p95", "unit"],
                    [[s["label"], s["n"], fmt(s["p50"], 2 if (s["p50"] or 0) < 10 else 1),
                      fmt(s["p95"], 2 if (s["p95"] or 0) < 10 else 1), s["unit"]] for s in pipe["stages"].values()])
    lines += ["", "Stage sources: query embedding, dense, BM25 and fusion are `SearchResult.timings_ms`; search, "
              "evidence selection and the model call are timed by wrapping the pipeline's own objects; prompt build "
              "and citation check are the same functions called again on the same inputs; time to first token and "
              "total are `Answer.timings` (from the question's arrival). Decode speed counts the first model call's "
              "tokens after the first one.", ""]
    if "bench-stages.png" in plots:
        lines += ["![stages](bench-stages.png)", ""]
    return lines


def _generators_md(gen: dict, plots: list[str], results: dict) -> list[str]:
    lines: list[str] = []
    bw = gen["bandwidth"]
    lines += ["## 2. Generator efficiency", "",
              f"Memory bandwidth, numpy copy of {bw['array_mb']} MB (bytes read + written per second, best of "
              f"several): {bw['single_thread_gbs']:.1f} GB/s with one thread, {bw['all_threads_gbs']:.1f} GB/s "
              f"with {bw['threads']}. Decoding one token reads every weight once, so the shipped GGUF "
              f"({gen['gguf_bytes'] / 1e9:.2f} GB) cannot decode faster than {bw['gbs']:.1f} / "
              f"{gen['gguf_bytes'] / 1e9:.2f} = **{gen['bound_tps']:.1f} tokens/s** here.", ""]
    if gen.get("skipped"):
        lines += [f"Backends not run: {gen['skipped']}.", ""]
    if gen.get("backends"):
        lines += [f"Greedy answers to the pipeline's own prompts for {len(gen['prompts'])} questions "
                  f"({', '.join(gen['prompts'])}), at most {gen['max_new_tokens']} new tokens (transformers: the "
                  "first 2 prompts, 24 tokens), full prefill each. Answers are the same when their tokens agree "
                  "as far as both went:", ""]
        lines += table(["backend", "configuration", "load (s)", "weights (GB)", "prefill tokens/s", "decode tokens/s",
                         "limit tokens/s", "share of limit", "same answers as llama.cpp 1 thread"],
                        [[b["backend"], b["config"], fmt(b.get("load_s")),
                          fmt(b.get("weights_bytes", gen["gguf_bytes"]) / 1e9, 2),
                          fmt(b.get("prefill_tps")), fmt(b.get("decode_tps")), fmt(b.get("bound_tps")),
                          fmt(b.get("bound_ratio"), 2),
                          b.get("error") or (f"{sum(b['same_answers'])}/{len(b['same_answers'])}"
                                             if b.get("same_answers") is not None else "")]
                         for b in gen["backends"]])
        if gen.get("fastest"):
            lines += ["", f"Fastest decode with the same greedy answers: **{gen['fastest']}**; llama.cpp reaches "
                      f"**{fmt(gen.get('ratio'), 2)}** of the bandwidth limit."]
        for backend in gen["backends"]:
            if backend.get("compile_note"):
                lines += [f"torch.compile: {backend['compile_note']}; compile + first prefill "
                          f"{fmt(backend.get('compile_s'))} s."]
        lines += ["", "<details><summary>Answers</summary>", ""]
        for backend in gen["backends"]:
            for run in backend.get("runs", []):
                lines.append(f"- {backend['backend']} {backend['config']}, {run['prompt']}: "
                             f"{run['text'].strip().replace(chr(10), ' ')}")
        lines += ["", "</details>", ""]
    if not results["options"]["generators"]:
        lines += ["transformers' GGUF loader (fp32, bfloat16, torch.compile) is measured with `--generators` "
                  "(slow: it dequantises the model to 3–6 GB).", ""]
    if "bench-generators.png" in plots:
        lines += ["![generators](bench-generators.png)", ""]
    return lines


def _scale_md(scale: dict, plots: list[str], results: dict) -> list[str]:
    lines = ["## 3. Scale", "",
              f"Synthetic corpora: random unit vectors of dimension {scale['dim']} with the report's "
              f"{scale['real_vectors']:,} vectors (chunks and sentences, both languages) mixed in. Queries, "
              f"{scale['queries']} each: **random** unit vectors (the hard case for approximate search: "
              "in 384 dimensions every stored vector is about equally far from them, so the true top 10 are "
              f"barely closer than the rest), **noisy copies** of stored vectors (cosine {scale['noisy_copy_cosine']} "
              "with their source: a query with a real near neighbour; the source's rank is in `source@10`) and the "
              "**report questions** embedded by the real embedder. Recall@10 is measured against exact search "
              "(ties with the 10th score count as found). Latency: one query per call, k=10, "
              f"faiss with {scale['faiss_threads']} threads. HNSW is `make_faiss_index(…, 'hnsw')` (M=32, "
              "efConstruction 40); IVF is IVFFlat with rag/index.py's 4·√n lists, trained on a sample of "
              "40 vectors per list.", ""]
    lines += _scale_table(scale)
    if scale.get("extrapolated"):
        lines += ["", f"Extrapolated to {TARGET_SCALE_N:,} vectors (not measured; run `rag bench --scale 1000000`): "]
        for e in scale["extrapolated"]:
            bits = [f"build ≈ {e['build_s']:.0f} s", f"index ≈ {e['index_mb']:.0f} MB"]
            if "p95_ms" in e:
                bits.append(f"single-query p95 ≈ {e['p95_ms']:.0f} ms (linear in n)")
            lines.append(f"- {e['index']} (from {e['from_n']:,}): " + ", ".join(bits))
    lines += _index_rule_md(scale)
    lines += [""]
    if "bench-scale.png" in plots:
        lines += ["![scale](bench-scale.png)", ""]
    return lines


def _scale_table(scale: dict) -> list[str]:
    header = ["n", "index", "parameter", "build (s)", "index MB"]
    names = list(scale["sizes"][0]["indexes"][0]["query_sets"]) if scale["sizes"] else []
    for name in names:
        header += [f"{name} p50 ms", "p95 ms", "recall@10"]
    header.append("source@10")
    rows = []
    for size in scale["sizes"]:
        for r in size["indexes"]:
            row = [f"{size['n']:,}", r["index"], r["param"], fmt(r["build_s"], 2), fmt(r["index_mb"], 0)]
            for name in names:
                s = r["query_sets"][name]
                row += [fmt(s["p50"], 2), fmt(s["p95"], 2), fmt(s["recall"], 3)]
            row.append(fmt(r["query_sets"].get("noisy copies", {}).get("source_in_top10"), 3))
            rows.append(row)
    return table(header, rows)


def _index_rule_md(scale: dict) -> list[str]:
    lines = ["", "### Index type by corpus size", "",
              "`rag.index.auto_index_type(n_vectors)`, the choice of `rag build` when `RAG_INDEX_TYPE` is "
              "`auto` (the default):", "",
              f"- up to {FLAT_MAX_VECTORS:,} vectors: `flat`. It is exact, costs nothing to build and needs "
              f"no tuning; one query scans {FLAT_MAX_VECTORS:,} × {scale['dim']} × 4 bytes = "
              f"{FLAT_MAX_VECTORS * scale['dim'] * 4 / 2**20:.0f} MB, well inside the {TARGET_SCALE_P95_MS:.0f} ms "
              "budget on 2 cores, with room for a loaded machine.",
              "- above: `hnsw` (`make_faiss_index`: M=32, efSearch 128). Query time grows with log n, "
              "and recall@10 ≥ 0.95 holds for questions that have real neighbours. The graph adds about 260 "
              "bytes per vector, and building is the slow part, done by one builder (see docs/scaling.md).",
              "- `ivf` is not chosen automatically. Its recall depends on `nprobe` and on a training sample "
              "that matches the data; a corpus that grows after training drifts from its lists. "
              "`make_faiss_index` also trains on every vector, which is slow at 1M (this benchmark trains on "
              "40 vectors per list). Where it measured faster or smaller than HNSW, it is worth choosing by "
              "hand (`RAG_INDEX_TYPE=ivf`, with a tuned nprobe).",
              "- Exact search at 1M vectors scans 1.5 GB per query, about 10× the 100k time, far above "
              f"{TARGET_SCALE_P95_MS:.0f} ms. That is why the rule switches long before 1M.", ""]
    lines += [f"- {note}" for note in rule_check(scale)]
    return lines


def _concurrency_md(conc: list[dict], plots: list[str], results: dict) -> list[str]:
    lines = ["## 4. Concurrency", "",
              "Questions asked at once from threads through one `Pipeline` (models and index loaded once; "
              "the run fails if anything loads again). The embedder and each local model serialise their own "
              "calls, so on 2 cores throughput saturates early and latency grows with the queue.", ""]
    lines += table(["generator", "at once", "questions", "seconds", "questions/s", "p50 ms", "p95 ms",
                     "model loads during test"],
                    [[c["generator"], c["threads"], c["requests"], fmt(c["wall_s"]), fmt(c["throughput_qps"], 2),
                      fmt(c["p50"], 0), fmt(c["p95"], 0), c.get("model_loads_during_test", 0)] for c in conc])
    lines += [""]
    if "bench-concurrency.png" in plots:
        lines += ["![concurrency](bench-concurrency.png)", ""]
    return lines


def _build_line(build: dict) -> str:
    if build.get("skipped"):
        return f"- Index build: not measured ({build['skipped']})."
    counts = build["counts"]
    return (f"- Index build of the report into a temporary folder ({build['embedder']}, {build['index_type']}, "
            f"model already loaded): **{build['seconds']:.1f} s** for {counts['chunks']} chunks "
            f"({counts['vectors']} vectors) and {counts['sentences']} sentences.")

