"""The eval harness (rag/evaluation.py) on a tiny question file whose answers are known."""
from __future__ import annotations

import json
import types

import pytest

from rag import config
from rag.evaluation import (OTHER, RetrievalReport, _metrics, evaluate_retrieval, first_hit_rank, format_comparison,
                            format_report, normalise, read_questions)

# Evidence strings copied from corpus/green-silk-road-2023/zh.md; the second and third are rewritten with
# half-width punctuation and different spacing, as a question writer might type them.
QUESTIONS = [
    {"id": "t1", "lang": "zh", "question": "蒙内铁路全线共设计了多少个大型野生动物通道？",
     "evidence": "全线共设计了14个大型野生动物通道、79座桥梁", "chunk": "c-1-2-1-b1-1-001"},
    {"id": "t2", "lang": "en", "question": "What is the total installed capacity of the Karot Hydropower Station?",
     # zh.md: 卡洛特水电站总装机 72 万千瓦，年平均发电量 32 亿千瓦时
     "evidence": "卡洛特水电站总装机72万千瓦,年平均发电量32亿千瓦时", "chunk": "c-1-3-1-b4-1-001"},
    {"id": "t3", "lang": "fr",
     "question": "Quel est le taux d'éclosion des tortues marines obtenu par le projet du terminal de Tema au Ghana ?",
     # zh.md: 孵化率78.8%（自然条件下海龟蛋孵化率约为10%~20%）
     "evidence": "孵化率 78.8% (自然条件下海龟蛋孵化率约为 10%～20%)", "chunk": None},
    {"id": "t4", "lang": "es", "question": "¿Cuántos tanques de sedimentación se instalaron en las bocas de los túneles del ferrocarril China-Laos?",
     "evidence": "全线隧道施工洞口共设置沉淀池 157 座", "chunk": None},
    {"id": "t5", "lang": "en", "question": "What was the total cost of the Mombasa–Nairobi Railway?", "evidence": ""},
]


@pytest.fixture()
def question_file(tmp_path):
    path = tmp_path / "qa_small.jsonl"
    lines = [json.dumps({k: v for k, v in q.items() if k != "chunk"}, ensure_ascii=False) for q in QUESTIONS]
    path.write_text("\n".join(lines[:2]) + "\n\n   \n" + "\n".join(lines[2:]) + "\n", encoding="utf-8")
    return path


def test_evidence_strings_really_are_in_the_corpus():
    text = config.ZH_FILE.read_text(encoding="utf-8")
    for q in QUESTIONS:
        if q["evidence"]:
            assert normalise(q["evidence"]) in normalise(text), q["id"]
    assert "年平均发电量 32 亿千瓦时" in text and "，" in text  # the width/spacing difference is real


# --- normalise / first_hit_rank ----------------------------------------------------------------------------

def test_normalise_folds_width_and_removes_all_whitespace():
    assert normalise("７２ 万千瓦，（ＡＢＣ）") == normalise("72万千瓦,(ABC)") == "72万千瓦,(ABC)"
    assert normalise("10%～20%") == "10%~20%"
    assert normalise(" a\tb\nc\u3000d\u00a0e\r\n") == "abcde"  # tab, newline, ideographic and no-break space
    assert normalise("") == ""


def test_first_hit_rank():
    chunks = ["无关的段落。", "卡洛特水电站总装机 72 万千瓦，年平均发电量 32 亿千瓦时，将满足……", "卡洛特水电站总装机72万千瓦"]
    assert first_hit_rank(chunks, "卡洛特水电站总装机72万千瓦,年平均发电量32亿千瓦时") == 2
    assert first_hit_rank(chunks, "卡洛特水电站总装机 72 万千瓦") == 2  # the first chunk that contains it
    assert first_hit_rank(chunks, "总装机 73 万千瓦") is None
    assert first_hit_rank([], "任何证据") is None
    # The evidence may span a line break in the chunk.
    assert first_hit_rank(["……可节约标准煤 140 万吨。\n卡洛特水电站在建设过程中"],
                          "可节约标准煤140万吨。卡洛特水电站在建设过程中") == 1


def test_read_questions_skips_blank_lines(question_file):
    rows = read_questions(question_file)
    assert [r["id"] for r in rows] == ["t1", "t2", "t3", "t4", "t5"]


# --- _metrics ---------------------------------------------------------------------------------------------

def test_metrics_on_stub_ranks():
    m = _metrics([1, 3, None, 7, 12])
    assert m["n"] == 5
    assert m["recall@1"] == pytest.approx(1 / 5)
    assert m["recall@5"] == pytest.approx(2 / 5)
    assert m["recall@10"] == pytest.approx(3 / 5)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 3 + 1 / 7) / 5)  # rank 12 is beyond the cut-off
    assert _metrics([None, None]) == {"recall@1": 0, "recall@5": 0, "recall@10": 0, "mrr@10": 0, "n": 2}
    assert _metrics([1]) == {"recall@1": 1, "recall@5": 1, "recall@10": 1, "mrr@10": 1, "n": 1}
    assert _metrics([5, 6, 10, 11])["recall@5"] == pytest.approx(1 / 4)
    assert _metrics([5, 6, 10, 11])["recall@10"] == pytest.approx(3 / 4)


class StubRetriever:
    """Returns chunks in a fixed order per question, so that the harness's book-keeping can be checked."""

    def __init__(self, answers: dict[str, list[str]]):
        self.answers = answers
        self.calls = []

    def search(self, question, k=None, mode="hybrid"):
        self.calls.append((question, k, mode))
        texts = self.answers.get(question, ["无关"] * 10)[:k]
        hits = [types.SimpleNamespace(chunk=types.SimpleNamespace(zh=t)) for t in texts]
        return types.SimpleNamespace(hits=hits)


def test_groups_pool_other_languages_and_skip_unanswerable():
    filler = ["无关"] * 10
    questions = [
        {"id": "z1", "lang": "zh", "question": "z1", "evidence": "甲"},
        {"id": "z2", "lang": "zh", "question": "z2", "evidence": "乙"},
        {"id": "e1", "lang": "en", "question": "e1", "evidence": "丙"},
        {"id": "f1", "lang": "fr", "question": "f1", "evidence": "丁"},
        {"id": "s1", "lang": "es", "question": "s1", "evidence": "戊"},
        {"id": "u1", "lang": "en", "question": "u1", "evidence": ""},
        {"id": "u2", "lang": "zh", "question": "u2"},
    ]
    retriever = StubRetriever({"z1": ["甲"] + filler, "z2": filler[:5] + ["乙"] + filler,
                               "e1": filler[:1] + ["丙"], "f1": filler, "s1": filler[:9] + ["戊"]})
    report = evaluate_retrieval(retriever, questions, k=10, mode="dense", name="stub")
    assert report.name == "stub"
    asked = [q for q, _, _ in retriever.calls]
    assert "u1" not in asked and "u2" not in asked  # unanswerable questions are never searched nor counted
    assert all(mode == "dense" for _, _, mode in retriever.calls)
    groups = report.groups
    assert list(groups)[:4] == ["all", "zh", "en", OTHER] and set(groups) == {"all", "zh", "en", OTHER, "fr", "es"}
    assert groups["all"]["n"] == 5 and groups["zh"]["n"] == 2 and groups["en"]["n"] == 1
    assert groups[OTHER]["n"] == 2 and groups["fr"]["n"] == 1 and groups["es"]["n"] == 1
    # ranks: z1 1, z2 6, e1 2, f1 None, s1 10
    assert groups["all"]["recall@5"] == pytest.approx(2 / 5)
    assert groups["all"]["recall@10"] == pytest.approx(4 / 5)
    assert groups["all"]["mrr@10"] == pytest.approx((1 + 1 / 6 + 1 / 2 + 1 / 10) / 5)
    assert groups["zh"]["recall@1"] == pytest.approx(1 / 2) and groups["zh"]["recall@5"] == pytest.approx(1 / 2)
    assert groups["en"]["recall@1"] == 0 and groups["en"]["recall@5"] == 1
    assert groups[OTHER]["recall@10"] == pytest.approx(1 / 2) and groups["fr"]["recall@10"] == 0
    assert {m["id"]: m["rank"] for m in report.misses} == {"z2": 6, "f1": None, "s1": 10}
    assert set(report.latency_ms) == {"p50", "p95"}


def test_real_retriever_on_the_small_file(retriever, question_file):
    questions = read_questions(question_file)
    report = evaluate_retrieval(retriever, questions, k=10)
    assert report.groups["all"]["n"] == 4  # t5 has no evidence
    assert report.groups["zh"]["n"] == 1 and report.groups["en"]["n"] == 1 and report.groups[OTHER]["n"] == 2
    assert report.groups["all"]["recall@5"] == 1.0, report.misses
    for q in QUESTIONS:
        if q.get("chunk"):
            hits = retriever.search(q["question"], 5).hits
            assert q["chunk"] in [h.chunk.id for h in hits[:5]], q["id"]
    json.dumps(report.to_json())  # serialisable, as `rag eval --json` prints it


# --- tables -----------------------------------------------------------------------------------------------

def _report(name: str, groups: dict[str, list]) -> RetrievalReport:
    return RetrievalReport(name, {g: _metrics(r) for g, r in groups.items()}, {"p50": 12.5, "p95": 40.25},
                           [{"id": "q9", "lang": "fr", "rank": None, "question": "Quelle est la question ?"}])


def test_format_report_table():
    report = _report("hybrid", {"all": [1, 2, None], "zh": [1], "en": [2], OTHER: [None], "fr": [None]})
    table = format_report(report)
    assert "hybrid" in table and "12.5" in table and "40.2" in table
    rows = {line.split()[0]: line.split() for line in table.splitlines()[2:] if not line.startswith("  ")}
    assert set(rows) == {"all", "zh", "en", OTHER, "fr"}
    assert rows["all"][1:] == ["3", "0.333", "0.667", "0.667", "0.500"]
    assert "miss@5 q9 [fr]" in table


def test_format_comparison_table():
    reports = [_report("dense (e5)", {"all": [1, None], "zh": [1], "en": [None]}),
               _report("hybrid (e5)", {"all": [1, 1], "zh": [1], "en": [1]})]
    table = format_comparison(reports)
    header, *rows = table.splitlines()
    for group in ("all", "zh", "en"):
        assert f"{group} r@5" in header
    assert "MRR@10" in header and "p95 ms" in header
    assert rows[0].startswith("dense (e5)") and rows[1].startswith("hybrid (e5)")
    assert rows[0].split()[-5:] == ["0.500", "1.000", "0.000", "0.500", "40.2"]


def test_whitespace_only_evidence_is_not_a_free_hit():
    retriever = StubRetriever({})
    report = evaluate_retrieval(retriever, [{"id": "w", "lang": "zh", "question": "w", "evidence": " \u3000\n"}])
    assert report.groups.get("all", {}).get("recall@1", 0) == 0, report.groups
