"""``rag bench``: run the sections in order, then write the targets, plots and Markdown."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from rag import config
from rag.bench.common import BenchOptions, load_average, machine_info, peak_rss_bytes, say
from rag.bench.concurrency import CONCURRENCY_LEVELS, bench_concurrency
from rag.bench.generators import bench_generators
from rag.bench.plots import write_plots
from rag.bench.report import render_markdown
from rag.bench.scale import bench_scale
from rag.bench.stages import bench_pipeline
from rag.bench.targets import targets


def run_bench(options: BenchOptions, settings: config.Settings | None = None) -> dict:
    from rag.evaluation import read_questions

    settings = settings or config.load_settings()
    if options.serve:  # section 5 alone: it starts a `rag serve` process (rag/bench/serve.py)
        from rag.bench.serve import run_serve_section

        return run_serve_section(options, settings)
    if options.stores:  # section 6 alone: FAISS flat / HNSW and Milvus (milvus-lite) at N vectors
        from rag.bench.stores import run_stores_section

        return run_stores_section(options, settings)
    started = time.perf_counter()
    results: dict = {"command": ["rag", "bench", *_argv(options)], "options": _jsonable(dataclasses.asdict(options))}
    results["machine"] = machine_info()
    say(f"machine: {results['machine']['cpu_model']}, {results['machine']['cores_usable']} usable cores, "
        f"{results['machine']['ram_gb']} GB RAM, load {results['machine']['load_average_start']}")
    questions = read_questions(config.DEV_QA_FILE) if config.DEV_QA_FILE.exists() else []
    if not questions:
        raise FileNotFoundError(f"no development questions at {config.DEV_QA_FILE}")
    limit = options.questions or (3 if options.quick else None)
    asked = questions[:limit] if limit else questions

    def checkpoint() -> None:  # a long run that dies late keeps what it measured
        if options.json_out:
            Path(options.json_out).write_text(json.dumps(_jsonable(results), ensure_ascii=False, indent=1),
                                              encoding="utf-8")

    say("\n== 1. pipeline ==")
    results["pipeline"], pipeline = bench_pipeline(settings, options, asked)
    checkpoint()

    say("\n== 4. concurrency ==")
    levels = (1, 4) if options.quick else CONCURRENCY_LEVELS
    results["concurrency"] = bench_concurrency(pipeline, questions, "extractive", levels, 2 if options.quick else 8)
    if options.concurrency_local:
        results["concurrency"] += bench_concurrency(pipeline, questions, "local", levels, 4)
    results["peak_rss_app_mb"] = peak_rss_bytes() / 2**20
    checkpoint()

    say("\n== 2. generator ==")
    results["generators"] = bench_generators(settings, options, pipeline, questions)
    checkpoint()

    say("\n== 3. scale ==")
    results["scale"] = bench_scale(settings, options, pipeline, questions)
    _write_report(results, options, started)
    checkpoint()
    return results


def _write_report(results: dict, options: BenchOptions, started: float) -> None:
    """Targets, plots and docs/benchmarks.md (or ``options.out``) from the measurements."""
    results["machine"]["load_average_end"] = load_average()
    results["peak_rss_mb"] = peak_rss_bytes() / 2**20
    results["seconds"] = time.perf_counter() - started
    results["targets"] = targets(results)
    say("\n== targets ==")
    for t in results["targets"]:
        met = "n/a" if t["met"] is None else ("met" if t["met"] else "NOT met")
        say(f"  {t['target']}: {t['measured']} [{met}]")
    out = Path(options.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plots = write_plots(results, out.parent)
    results["plots"] = plots
    from rag.bench import serve, stores
    from rag.bench.common import keep_section

    old = out.read_text(encoding="utf-8") if out.exists() else ""
    new = keep_section(old, keep_section(old, render_markdown(results, plots), serve.HEADING), stores.HEADING)
    out.write_text(new, encoding="utf-8")
    say(f"\nwrote {out} and {', '.join(plots) or 'no plots'} in {results['seconds'] / 60:.1f} min")


def _argv(options: BenchOptions) -> list[str]:
    argv = []
    if options.quick:
        argv.append("--quick")
    if options.scales:
        argv += ["--scale", *map(str, options.scales)]
    if options.generators:
        argv.append("--generators")
    if options.concurrency_local:
        argv.append("--concurrency")
    if options.serve:
        argv.append("--serve")
    if options.stores:
        argv += ["--stores", str(options.stores)]
    if options.questions:
        argv += ["--questions", str(options.questions)]
    if options.generator:
        argv += ["--generator", options.generator]
    return argv


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value
