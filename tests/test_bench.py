"""``rag bench``: the quick run end to end (tiny sizes, no language model), and its pure helpers."""
from __future__ import annotations

import time

import numpy as np
import pytest

from rag.bench import BenchOptions, run_bench
from rag.bench.generators import in_subprocess, memory_bandwidth, same_answer
from rag.bench.scale import recall_at_k


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "benchmarks.md"
    return out, run_bench(BenchOptions(quick=True, out=out, json_out=out.with_suffix(".json")))


def test_quick_bench_writes_markdown_and_plots(quick):
    out, results = quick
    text = out.read_text(encoding="utf-8")
    for heading in ("## Machine", "## Targets", "## 1. Pipeline", "## 2. Generator efficiency", "## 3. Scale",
                    "## 4. Concurrency", "### Index type by corpus size"):
        assert heading in text
    assert "Quick run" in text
    pngs = sorted(p.name for p in out.parent.glob("bench-*.png"))
    assert pngs and set(pngs) == set(results["plots"])
    assert all((out.parent / name).stat().st_size > 1000 for name in pngs)
    for name in pngs:
        assert f"]({name})" in text
    assert out.with_suffix(".json").exists()


def test_quick_bench_records_the_machine(quick):
    machine = quick[1]["machine"]
    assert machine["cores"] >= 1 and machine["ram_gb"] > 0 and machine["python"]
    assert {"torch", "faiss-cpu", "sentence-transformers", "llama_cpp_python", "numpy"} <= set(machine["libraries"])


def test_quick_bench_numbers_are_positive(quick):
    results = quick[1]
    pipeline = results["pipeline"]
    measured = {key: s for key, s in pipeline["stages"].items() if s["n"]}
    assert {"embed", "dense", "bm25", "fusion", "search_ms", "evidence_ms", "total_ms"} <= set(measured)
    for stats in measured.values():
        assert 0 < stats["p50"] <= stats["p95"]
    assert pipeline["peak_rss_mb"] > 0 and results["peak_rss_mb"] >= pipeline["peak_rss_mb"]
    assert all(e["texts_per_s"] > 0 for e in pipeline["embedders"] if e.get("available"))
    generators = results["generators"]
    assert generators["bandwidth"]["gbs"] > 0 and generators["bound_tps"] > 0
    for row in results["concurrency"]:
        assert row["throughput_qps"] > 0 and 0 < row["p50"] <= row["p95"]
        assert row["model_loads_during_test"] == 0
    assert [row["threads"] for row in results["concurrency"]] == [1, 4]


def test_quick_bench_scale_recall(quick):
    scale = quick[1]["scale"]
    assert scale["dim"] == 384 and scale["sizes"]
    for size in scale["sizes"]:
        kinds = {row["index"] for row in size["indexes"]}
        assert kinds == {"flat", "hnsw", "ivf"}
        for row in size["indexes"]:
            assert row["build_s"] >= 0 and row["index_mb"] > 0
            for stats in row["query_sets"].values():
                assert stats["p50"] > 0 and 0 <= stats["recall"] <= 1
                if row["index"] == "flat":
                    assert stats["recall"] == 1.0
        best_hnsw = max(r["query_sets"]["noisy copies"]["recall"] for r in size["indexes"] if r["index"] == "hnsw")
        assert best_hnsw > 0.9
    assert scale["extrapolated"]  # 1M was not run: its build time and memory are extrapolated


def test_recall_counts_ties_as_found():
    base = np.eye(4, dtype=np.float32)[[0, 0, 1, 2, 3]]  # rows 0 and 1 are the same vector
    query = np.array([[1, 0, 0, 0]], dtype=np.float32)
    kth = np.array([1.0], dtype=np.float32)  # exact top-1 score
    assert recall_at_k(base, query, np.array([[1]]), kth) == 1.0  # the tie is as good as row 0
    assert recall_at_k(base, query, np.array([[2]]), kth) == 0.0


def test_slow_backends_run_in_a_subprocess_with_a_time_limit():
    assert in_subprocess(memory_bandwidth, (8, 1), 120)["gbs"] > 0
    started = time.perf_counter()
    assert in_subprocess(time.sleep, (30,), 1)["error"] == "did not finish within 1 s"
    assert time.perf_counter() - started < 20


def test_greedy_answers_compare_as_far_as_both_went():
    full = {"token_ids": [1, 2, 3, 4], "text": "a b c d", "cut": False}
    assert same_answer(full, {"token_ids": [1, 2], "text": "a b", "cut": True})  # a shorter token cap
    assert not same_answer(full, {"token_ids": [1, 2], "text": "a b", "cut": False})  # stopped early: different
    assert not same_answer(full, {"token_ids": [1, 5, 3, 4], "text": "a e c d", "cut": False})
    assert same_answer(full, {"token_ids": [9], "text": " a b c d", "cut": False})  # same text, other tokens


def test_cli_parses_bench_options():
    from rag.cli import build_parser

    args = build_parser().parse_args(["bench", "--quick", "--scale", "1000000", "--generators", "--concurrency",
                                      "--out", "x.md"])
    assert args.quick and args.scale == [1_000_000] and args.generators and args.concurrency and args.out == "x.md"
    defaults = build_parser().parse_args(["bench"])
    assert not defaults.quick and defaults.scale == [] and defaults.out.endswith("docs/benchmarks.md")


def test_rag_bench_documents_compares_the_pdf_parsers(capsys):
    """`rag bench --documents parsers` (rag/bench/documents.py): pypdf reads the typeset Chinese and English
    PDFs back in order, and a parser that is not installed is a row saying so, not a crash."""
    from rag.cli import main

    assert main(["bench", "--documents", "parsers"]) == 0
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if "| pypdf |" in line and "report" in line]
    assert rows and all("| 1.000 |" in row for row in rows)
