"""``rag eval``: retrieval quality and latency on a question file with evidence sentences.

A question is answered by a chunk whose Chinese text contains its evidence sentence, compared after
NFKC normalisation (full/half-width punctuation) with all whitespace removed.
"""
from __future__ import annotations

import dataclasses
import json
import re
import time
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from rag.errors import QuestionFileError
from rag import config, followup

CUTOFFS = (1, 5, 10)
OTHER = "other"  # the languages that are neither zh nor en, pooled


def normalise(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def read_questions(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise QuestionFileError(f"{path}, line {number}: not valid JSON ({error.msg})") from None
        if isinstance(row, dict) and "turns" in row:  # a conversation, scored on its last turn
            row = followup.conversation_row(row)
        if isinstance(row, dict) and isinstance(row.get("question"), str):
            rows.append(row)
    return rows


def is_answerable(question: dict) -> bool:
    return bool(str(question.get("evidence") or "").strip())


def first_hit_rank(chunk_texts: list[str], evidence: str) -> int | None:
    """1-based rank of the first chunk that contains the evidence, or None."""
    wanted = normalise(evidence)
    return next((rank for rank, text in enumerate(chunk_texts, start=1) if wanted in normalise(text)), None)


@dataclasses.dataclass
class RetrievalReport:
    name: str
    groups: dict[str, dict[str, float]]  # group (all, zh, en, other, each language) → metric → value
    latency_ms: dict[str, float]
    misses: list[dict]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _metrics(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks)
    metrics = {f"recall@{k}": sum(1 for r in ranks if r and r <= k) / n for k in CUTOFFS}
    metrics["mrr@10"] = sum(1 / r for r in ranks if r and r <= 10) / n
    metrics["n"] = n
    return metrics


def evaluate_retrieval(retriever, questions: list[dict], k: int = 10, mode: str = "hybrid",
                       name: str = "", history: bool = True) -> RetrievalReport:
    """``history``: resolve a conversation's last turn against its earlier ones (else search it alone)."""
    answerable = [q for q in questions if is_answerable(q)]
    by_group: dict[str, list[int | None]] = defaultdict(list)
    latencies, misses = [], []
    for question in answerable:
        earlier = followup.search_history(retriever, followup.earlier_questions(question), mode) if history else []
        start = time.perf_counter()
        text = (followup.resolve(question["question"], earlier, followup.names_for(retriever)).standalone
                if earlier else question["question"])
        result = retriever.search(text, max(k, 10), mode=mode)
        latencies.append((time.perf_counter() - start) * 1000)
        rank = first_hit_rank([h.chunk.zh for h in result.hits], question["evidence"])
        lang = question.get("lang", "?")
        for group in {"all", lang, lang if lang in ("zh", "en") else OTHER} | followup.conversation_groups(question):
            by_group[group].append(rank)
        if not rank or rank > 5:
            misses.append({"id": question.get("id"), "lang": lang, "rank": rank, "question": question["question"]})
    groups = {group: _metrics(ranks) for group, ranks in sorted(by_group.items(), key=lambda g: _group_order(g[0]))}
    latency = {"p50": float(np.percentile(latencies, 50)), "p95": float(np.percentile(latencies, 95))} if latencies else {}
    return RetrievalReport(name or mode, groups, latency, misses)


def _group_order(group: str) -> tuple[int, str]:
    """all, zh, en, other, then each language, then each outcome ("=quoted")."""
    return ({"all": 0, "zh": 1, "en": 2, OTHER: 3}.get(group, 5 if group.startswith("=") else 4), group)


def format_report(report: RetrievalReport) -> str:
    lines = [f"{report.name}: search latency p50 {report.latency_ms.get('p50', 0):.1f} ms, "
             f"p95 {report.latency_ms.get('p95', 0):.1f} ms",
             f"{'group':<8}{'n':>4}" + "".join(f"{m:>11}" for m in ("recall@1", "recall@5", "recall@10", "mrr@10"))]
    for group, m in report.groups.items():
        lines.append(f"{group:<8}{m['n']:>4}" + "".join(f"{m[x]:>11.3f}" for x in ("recall@1", "recall@5", "recall@10", "mrr@10")))
    for miss in report.misses:
        lines.append(f"  miss@5 {miss['id']} [{miss['lang']}] rank={miss['rank']}: {miss['question'][:90]}")
    return "\n".join(lines)


def format_comparison(reports: list[RetrievalReport]) -> str:
    groups = list(reports[0].groups)
    if not groups:
        return "no answerable questions (none has an evidence sentence)"
    header = f"{'configuration':<34}" + "".join(f"{g + ' r@5':>10}" for g in groups) + f"{'MRR@10':>8}{'p95 ms':>8}"
    rows = [header]
    for report in reports:
        rows.append(f"{report.name:<34}" + "".join(f"{report.groups[g]['recall@5']:>10.3f}" for g in groups)
                    + f"{report.groups.get('all', {}).get('mrr@10', 0):>8.3f}{report.latency_ms.get('p95', 0):>8.1f}")
    return "\n".join(rows)


def comparison_configs(settings: config.Settings) -> list[tuple[str, config.Settings, str]]:
    """(name, settings, mode) for --compare: each retrieval mode on the default embedder, then the others."""
    from rag.embedding import KNOWN_EMBEDDERS, embedder_available

    configs = [(f"{mode} ({settings.embedder})", settings, mode) for mode in ("dense", "bm25", "hybrid")]
    for name in KNOWN_EMBEDDERS:
        if name == settings.embedder or not embedder_available(name):
            continue
        other = dataclasses.replace(settings, embedder=name,
                                    index_dir=settings.cache_dir / "indexes" / name.replace(":", "_"))
        configs += [(f"dense ({name})", other, "dense"), (f"hybrid ({name})", other, "hybrid")]
    return configs


def gold_in_answer(answer: str, golds: list[str]) -> bool:
    text = normalise(answer).lower()
    return any(normalise(g).lower() in text for g in golds)


def evaluate_answers(pipeline, questions: list[dict], generator: str | None = None,
                     progress: bool = False) -> dict:
    """Answer quality per language: accuracy, evidence cited, citations supported, refusals, latency."""
    from tqdm import tqdm

    rows = []
    for question in tqdm(questions, disable=not progress, desc="answering", unit="question"):
        answer = pipeline.ask(question["question"], generator=generator)
        rows.append(answer_row(question, answer))
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        for group in {"all", row["lang"], row["lang"] if row["lang"] in ("zh", "en") else OTHER, f"={row['outcome']}"}:
            groups[group].append(row)
    return {
        "generator": generator or pipeline.settings.generator,
        "groups": {g: _answer_metrics(r) for g, r in sorted(groups.items(), key=lambda g: _group_order(g[0]))},
        "outcomes": dict(Counter(r["outcome"] for r in rows)),
        "traps": {trap: _share([r for r in rows if r["trap"] == trap], "refused")
                  for trap in sorted({r["trap"] for r in rows if r["trap"]})},
        "rows": rows,
    }


def answer_row(question: dict, answer) -> dict:
    """One scored answer. ``wrong_verified``: answered (not refused) with every citation verified but the
    gold answer absent — the candidates for a wrong answer under a green badge, to be read by a person."""
    from rag.citations import script_problem, strip_markers

    answerable = is_answerable(question)
    correct = answerable and not answer.refused and gold_in_answer(answer.answer, question.get("answers", []))
    evidence = [question.get("evidence", ""), question.get("evidence2", "")]
    return {
        "id": question.get("id"), "lang": question.get("lang", "?"), "answerable": answerable,
        "trap": question.get("trap"), "outcome": getattr(answer, "outcome", "answered"),
        "correct": correct, "refused": answer.refused,
        "evidence_cited": answerable and all(any(first_hit_rank([c.zh], e) for c in answer.citations)
                                             for e in evidence if e),
        "citations": len(answer.citations), "supported": sum(c.supported for c in answer.citations),
        "wrong_verified": answerable and not correct and not answer.refused and bool(answer.citations)
                          and all(c.supported for c in answer.citations),
        "extractive": answer.generator.startswith("extractive"),
        "in_language": script_problem(strip_markers(answer.answer), question.get("lang", "")) is None,
        "answer_chars": len(strip_markers(answer.answer)),
        "first_token_ms": answer.timings.get("first_token_ms"), "total_ms": answer.timings["total_ms"],
        "answer": answer.answer,
    }


def _share(rows: list[dict], key: str) -> float | None:
    return sum(bool(r[key]) for r in rows) / len(rows) if rows else None


def _answer_metrics(rows: list[dict]) -> dict:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    citations = sum(r["citations"] for r in rows)
    first_tokens = [r["first_token_ms"] for r in rows if r["first_token_ms"] is not None]
    totals = [r["total_ms"] for r in rows]
    return {
        "n": len(rows),
        "accuracy": _share(answerable, "correct"),
        "evidence_cited": _share(answerable, "evidence_cited"),
        "citations_supported": sum(r["supported"] for r in rows) / citations if citations else None,
        "refused_unanswerable": _share(unanswerable, "refused"),
        "refused_answerable": _share(answerable, "refused"),
        "extractive_share": _share(rows, "extractive"),
        "wrong_verified": sum(r["wrong_verified"] for r in rows),
        "in_language": _share(rows, "in_language"),
        "answer_chars_p50": float(np.percentile([r["answer_chars"] for r in rows], 50)),
        "first_token_p50_ms": float(np.percentile(first_tokens, 50)) if first_tokens else None,
        "total_p50_ms": float(np.percentile(totals, 50)),
        "total_p95_ms": float(np.percentile(totals, 95)),
    }


def format_answer_report(report: dict) -> str:
    columns = ("accuracy", "evidence_cited", "citations_supported", "refused_unanswerable", "refused_answerable",
               "wrong_verified", "in_language", "answer_chars_p50", "first_token_p50_ms", "total_p50_ms", "total_p95_ms")
    short = ("acc", "ev.cited", "supported", "refuse-un", "refuse-ans", "wrong+ok", "in-lang", "chars p50",
             "TTFT p50", "total p50", "p95")
    lines = [f"answers with generator {report['generator']}",
             f"{'group':<8}{'n':>4}" + "".join(f"{c:>11}" for c in short)]
    for group, m in report["groups"].items():
        cells = "".join(f"{'-':>11}" if m[c] is None else f"{m[c]:>11.0f}" if c.endswith(("_ms", "_p50", "verified"))
                        else f"{m[c]:>11.2f}" for c in columns)
        lines.append(f"{group:<8}{m['n']:>4}{cells}")
    lines.append("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(report.get("outcomes", {}).items())))
    if report.get("traps"):
        lines.append("refused per trap: " + ", ".join(f"{k} {v:.2f}" for k, v in report["traps"].items()))
    return "\n".join(lines)


def refusal_curve(pipeline, questions: list[dict], thresholds: list[float] | None = None) -> list[dict]:
    """Refusal rates on unanswerable and answerable questions for each evidence-score threshold, with the
    score-independent refusals the pipeline adds (out of scope; no evidence sentence holds a value of the
    asked kind about the asked thing; a premise the passages never mention) applied at every threshold.
    The model's NOT_FOUND is not part of it (no model is run)."""
    scores = []
    for question in questions:
        result = pipeline.retriever.search(question["question"], pipeline.settings.top_k)
        selection = pipeline.selector.select(result)
        offset = 0.0 if selection.lexical else settings_gap(pipeline.settings)
        always = (pipeline.out_of_scope(question["question"], result, selection) or not selection.holds_asked
                  or bool(pipeline.premise_missing(question["question"], result, selection)))
        scores.append((selection.best_score + offset, always, is_answerable(question)))
    grid = [round(0.80 + 0.01 * i, 2) for i in range(31)]
    thresholds = thresholds or sorted({*grid, pipeline.settings.refusal_threshold})
    curve = []
    for threshold in thresholds:
        refused = [(score < threshold or always, answerable) for score, always, answerable in scores]
        unanswerable = [r for r, a in refused if not a]
        answerable = [r for r, a in refused if a]
        curve.append({"threshold": threshold,
                      "refused_unanswerable": sum(unanswerable) / len(unanswerable) if unanswerable else None,
                      "refused_answerable": sum(answerable) / len(answerable) if answerable else None})
    return curve


def settings_gap(settings) -> float:
    """How much lower the meaning-only bar is, so one curve covers both kinds of question."""
    return settings.refusal_threshold - settings.refusal_threshold_meaning_only


def format_refusal_curve(curve: list[dict], chosen: float) -> str:
    lines = ["threshold  refused(unanswerable)  refused(answerable)"]
    for point in curve:
        mark = "  <- configured" if abs(point["threshold"] - chosen) < 1e-9 else ""
        cells = [f"{point[k]:.2f}" if point[k] is not None else "-" for k in ("refused_unanswerable", "refused_answerable")]
        lines.append(f"{point['threshold']:>9.3f}  {cells[0]:>20}  {cells[1]:>19}{mark}")
    return "\n".join(lines)


# ---- broad questions (overview / list / compare): items named, recall, citations that hold them ----------

MARKER_RE = re.compile(r"\[(\d+)\]")


def item_names(item: dict) -> list[str]:
    return [item["name"], *item.get("aliases", [])]


def named_lines(answer: str, item: dict) -> list[str]:
    """The answer's lines that name the item (its name or an alias, compared after normalisation)."""
    return [line for line in answer.splitlines() if gold_in_answer(line, item_names(item))]


def cited_holder(lines: list[str], item: dict, citations: list) -> bool:
    """Whether a passage cited on a line naming the item holds it: its evidence sentence, or a name of it
    in the cited chunk (either language) or in the chunk's section titles."""
    by_marker = {c.marker: c for c in citations}
    for line in lines:
        for marker in MARKER_RE.findall(line):
            citation = by_marker.get(int(marker))
            if citation is None:
                continue
            if item.get("evidence") and normalise(item["evidence"]) in normalise(citation.zh):
                return True
            if gold_in_answer(f"{citation.section}\n{citation.zh}\n{citation.en}", item_names(item)):
                return True
    return False


def evaluate_broad(pipeline, questions: list[dict], generator: str | None = None, progress: bool = False) -> dict:
    """Per kind: share of answers naming at least ``min_items``, item recall, named items whose citation
    holds them, latency; and how often the question kind was recognised."""
    from tqdm import tqdm

    from rag.broad import classify

    rows = []
    for question in tqdm(questions, disable=not progress, desc="answering", unit="question"):
        answer = pipeline.ask(question["question"], generator=generator)
        named = {i: named_lines(answer.answer, item) for i, item in enumerate(question["items"])}
        named = {i: lines for i, lines in named.items() if lines}
        held = sum(cited_holder(lines, question["items"][i], answer.citations) for i, lines in named.items())
        rows.append({"id": question.get("id"), "lang": question.get("lang", "?"), "kind": question["kind"],
                     "classified": classify(question["question"]), "outcome": answer.outcome, "routed": answer.kind,
                     "items": len(question["items"]), "min_items": question["min_items"], "named": len(named),
                     "held": held, "passed": len(named) >= question["min_items"],
                     "total_ms": answer.timings["total_ms"], "answer": answer.answer})
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups["all"].append(row)
        groups[row["kind"]].append(row)
    return {"generator": generator or pipeline.settings.generator,
            "groups": {g: _broad_metrics(r) for g, r in groups.items()}, "rows": rows}


def _broad_metrics(rows: list[dict]) -> dict:
    named = sum(r["named"] for r in rows)
    totals = [r["total_ms"] for r in rows]
    return {"n": len(rows), "kind_recognised": sum(r["classified"] == r["kind"] for r in rows) / len(rows),
            "passed": sum(r["passed"] for r in rows) / len(rows),
            "item_recall": sum(r["named"] / r["items"] for r in rows) / len(rows),
            "cited_held": sum(r["held"] for r in rows) / named if named else None,
            "total_p50_ms": float(np.percentile(totals, 50)), "total_max_ms": float(max(totals))}


def format_broad_report(report: dict) -> str:
    columns = ("kind_recognised", "passed", "item_recall", "cited_held", "total_p50_ms", "total_max_ms")
    lines = [f"broad answers from the report's structure (no model; questions it cannot place use {report['generator']})",
             f"{'kind':<10}{'n':>4}" + "".join(f"{c:>16}" for c in columns)]
    for group, m in report["groups"].items():
        cells = "".join(f"{'-':>16}" if m[c] is None else f"{m[c]:>16.0f}" if c.endswith("_ms") else f"{m[c]:>16.2f}"
                        for c in columns)
        lines.append(f"{group:<10}{m['n']:>4}{cells}")
    for row in report["rows"]:
        mark = "ok  " if row["passed"] else "MISS"
        lines.append(f"  {mark} {row['id']} [{row['lang']} {row['kind']}] named {row['named']}/{row['items']} "
                     f"(min {row['min_items']}), cited {row['held']}/{row['named']}, {row['total_ms']:.0f} ms")
    return "\n".join(lines)
