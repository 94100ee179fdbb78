"""Section 1 of ``rag bench``: the pipeline. Index build time, embedding throughput per installed embedder,
and per-question p50/p95 of every stage over the development questions."""
from __future__ import annotations

import contextlib
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

from rag import config
from rag.bench.common import BenchOptions, fmt, load_average, ms_since, peak_rss_bytes, percentiles, rss_bytes, say


def messages_for(pipeline, question: str, language: str) -> list[dict]:
    """The messages the pipeline sends the model for a question, built with the pipeline's own functions."""
    from rag import prompts
    from rag.answer import _citation, _quote

    selection = pipeline.selector.select(pipeline.retriever.search(question, pipeline.settings.top_k))
    facts = [_quote(_citation(i, e), language) for i, e in enumerate(selection.sentences, start=1)]
    return prompts.build_messages(facts, question, language)


def _prompt_tokens(pipeline, model, question: str, language: str) -> int | None:
    """Length of the prompt the pipeline sent (chat template applied)."""
    if not hasattr(model, "count_tokens"):
        return None
    with contextlib.suppress(Exception):
        return model.count_tokens(messages_for(pipeline, question, language))
    return None


def _question_row(pipeline, model, question: dict, generator: str) -> dict:
    """One question's stage timings, as the pipeline itself reports them in ``Answer.timings``."""
    answer = pipeline.ask(question["question"], generator=generator)
    t = answer.timings
    row = {
        "id": question.get("id"), "lang": question.get("lang"), "answerable": bool(question.get("evidence")),
        "refused": answer.refused, "outcome": answer.outcome, "generator": answer.generator, "note": answer.note,
        "model_calls": int(t.get("model_calls", 0)),
        **{key: t.get(f"{key}_ms") for key in ("embed", "dense", "bm25", "fusion")},
        **{key: t.get(key) for key in ("search_ms", "evidence_ms", "retrieve_ms", "prompt_ms", "prefill_ms",
                                       "first_token_ms", "check_ms", "total_ms")},
    }
    pieces, decode_ms = t.get("decode_pieces"), t.get("decode_ms")
    if pieces and pieces >= 2 and decode_ms:
        row["decode_tps"] = (pieces - 1) / (decode_ms / 1000)
    if "prompt_ms" in t and model is not None:
        row["prompt_tokens"] = _prompt_tokens(pipeline, model, answer.standalone or answer.question, answer.language)
    return row


STAGES = (  # (row key, label, unit)
    ("embed", "query embedding", "ms"), ("dense", "dense search (chunks + sentences)", "ms"),
    ("bm25", "BM25 (zh + en)", "ms"), ("fusion", "fusion (RRF)", "ms"), ("search_ms", "search, all of it", "ms"),
    ("evidence_ms", "evidence selection", "ms"), ("prompt_ms", "prompt build", "ms"),
    ("prompt_tokens", "prompt length (chat template applied)", "tokens"),
    ("prefill_ms", "model call to first token (prefill)", "ms"),
    ("first_token_ms", "time to first token (from question)", "ms"),
    ("decode_tps", "decode speed", "tokens/s"), ("check_ms", "citation check", "ms"),
    ("total_ms", "total answer", "ms"),
)



def bench_pipeline(settings: config.Settings, options: BenchOptions, questions: list[dict]) -> tuple[dict, object]:
    """The section's numbers, and the loaded Pipeline (the other sections reuse it)."""
    from rag.answer import Pipeline

    section: dict = {"load_average_before": load_average()}
    start = time.perf_counter()
    pipeline = Pipeline(settings, progress=False)
    section["pipeline_load_s"] = ms_since(start) / 1000
    section["rss_after_load_mb"] = rss_bytes() / 2**20  # index, one embedder, BM25 and evidence tables
    say(f"pipeline loaded in {section['pipeline_load_s']:.1f} s (index, embedder, BM25 tables, evidence tables)")
    section["build"] = _measure_build(settings, options)
    section["embedders"] = _measure_embedders(settings, options, pipeline)
    section.update(_measure_questions(settings, options, pipeline, questions))
    section["load_average_after"] = load_average()
    section["peak_rss_mb"] = peak_rss_bytes() / 2**20
    say(f"\nstages over {len(section['questions'])} questions, generator {section['generator']}:")
    say(f"  {'stage':<40}{'n':>4}{'p50':>10}{'p95':>10}")
    for stats in section["stages"].values():
        say(f"  {stats['label'] + ' (' + stats['unit'] + ')':<40}{stats['n']:>4}"
            f"{fmt(stats['p50']):>10}{fmt(stats['p95']):>10}")
    say(f"peak RSS so far: {section['peak_rss_mb']:.0f} MB")
    return section, pipeline


def _measure_build(settings: config.Settings, options: BenchOptions) -> dict:
    """Index build of the report into a temporary folder (not in a quick run: it embeds ~900 texts)."""
    from rag.index import build_index

    if options.quick:
        return {"skipped": "quick run", "embedder": settings.embedder, "index_type": settings.index_type}
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as folder:
        build_settings = dataclasses.replace(settings, index_dir=Path(folder) / "embeddings")
        start = time.perf_counter()
        manifest = build_index(build_settings, progress=False)
        build_s = ms_since(start) / 1000
    say(f"index build ({settings.embedder}, model already loaded): {build_s:.1f} s for "
        f"{manifest['counts']['chunks']} chunks, {manifest['counts']['vectors']} chunk vectors, "
        f"{manifest['counts']['sentences']} sentences")
    return {"embedder": settings.embedder, "seconds": build_s, "counts": manifest["counts"],
            "index_type": manifest["index_type"]}


def _measure_embedders(settings: config.Settings, options: BenchOptions, pipeline) -> list[dict]:
    """Embedding throughput per installed embedder, on the chunk texts the build embeds."""
    from rag.embedding import KNOWN_EMBEDDERS, embedder_available, get_embedder

    languages = pipeline.retriever.index.manifest.get("languages", ["zh"])
    texts = [c.embed_text(lang) for lang in languages for c in pipeline.retriever.chunks]
    names = KNOWN_EMBEDDERS
    if options.quick:  # the embedder the pipeline has loaded already, on a few texts
        texts, names = texts[:8], [settings.embedder]
    rows = []
    for name in names:
        if not embedder_available(name):
            rows.append({"embedder": name, "available": False})
            continue
        embedder = get_embedder(name, settings.cache_dir)
        try:
            start = time.perf_counter()
            embedder.encode_passages(["warm-up"])
            load_s = ms_since(start) / 1000
            start = time.perf_counter()
            embedder.encode_passages(texts)
            seconds = ms_since(start) / 1000
        except Exception as error:  # noqa: BLE001 - an embedder that fails is reported, not fatal
            rows.append({"embedder": name, "available": False, "error": str(error)[:200]})
            continue
        rows.append({"embedder": name, "available": True, "texts": len(texts), "first_call_s": load_s,
                     "seconds": seconds, "texts_per_s": len(texts) / seconds if seconds else None})
        say(f"embedding {name}: {len(texts) / seconds:.1f} chunk texts/s ({len(texts)} texts, {seconds:.1f} s)")
    return rows


def _load_generator(settings: config.Settings, generator: str) -> tuple[object, dict]:
    """The model of the stage measurements (None: extractive answers) and what loading it cost."""
    from rag.llm import GeneratorUnavailable, get_generator

    try:
        start = time.perf_counter()
        model = get_generator(generator, settings.cache_dir, timeout_s=settings.generator_timeout_s)
    except (GeneratorUnavailable, ValueError) as error:
        say(f"generator {generator} unavailable ({error}); answers will be extractive")
        return None, {"generator_load_s": None, "generator_error": str(error)}
    return model, {"generator_load_s": ms_since(start) / 1000, "rss_after_generator_mb": rss_bytes() / 2**20}


def _measure_questions(settings: config.Settings, options: BenchOptions, pipeline, questions: list[dict]) -> dict:
    """Per-question stage timings, their percentiles, and how the answers came about."""
    from rag.answer import EXTRACTIVE

    generator = options.generator or (EXTRACTIVE if options.quick else settings.generator)
    model, out = (None, {"generator_load_s": None}) if generator == EXTRACTIVE else \
        _load_generator(settings, generator)
    rows = []
    for number, question in enumerate(questions, start=1):
        row = _question_row(pipeline, model, question, generator)
        rows.append(row)
        print(f"  [{number}/{len(questions)}] {row['id']} {row['lang']}: total {fmt(row['total_ms'], 0)} ms, "
              f"first token {fmt(row['first_token_ms'], 0)} ms, {row['generator']}", file=sys.stderr, flush=True)
    reasons: dict[str, int] = {}
    for row in rows:
        if row["note"]:
            reasons[row["note"][:120]] = reasons.get(row["note"][:120], 0) + 1
    return {**out, "generator": generator, "questions": rows,
            "stages": {key: {"label": label, "unit": unit, **percentiles(r.get(key) for r in rows)}
                       for key, label, unit in STAGES},
            "answered_by_model": sum(1 for r in rows if r["generator"] == getattr(model, "name", None)),
            "retried": sum(1 for r in rows if r["model_calls"] > 1),
            "refused": sum(1 for r in rows if r["refused"]),
            "extractive": sum(1 for r in rows if r["generator"].startswith(EXTRACTIVE)),
            "fallback_reasons": dict(sorted(reasons.items(), key=lambda item: -item[1]))}
