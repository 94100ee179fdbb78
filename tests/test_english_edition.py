"""Checks of the project's English translation (corpus/<report>/en.jsonl) against the Chinese corpus.

* alignment: one English line per Chinese passage id and heading id, no orphans, no duplicates;
* numbers: every value in a Chinese passage or heading (rag.numbers) is in its English;
* glossary: every glossary term found in a Chinese passage or heading has its English form there;
* length: the English/Chinese character ratio of each passage is in a plausible band;
* translator's notes: an optional "note" on a passage row reaches its passage and chunks.

See docs/corpus.md.
"""
from __future__ import annotations

import collections
import csv
import json
import re
import statistics
from pathlib import Path

import pytest

from rag import config, corpus, glossary
from rag.chunking import chunk_passages
from rag.numbers import extract_numbers, same_value

GLOSSARY_EXCEPTIONS_FILE = Path(__file__).parent / "data" / "glossary_exceptions.tsv"

# Values of a Chinese passage that legitimately have no counterpart in its English, keyed by
# (passage or heading id, value) with the reason. Add one only for a real rendering difference, never to
# hide a wrong number. Empty at present: G20 (二十国集团), COP15, the 1970s (20世纪70年代), "three-in-one"
# (三位一体) and 首届 = "first" are all matched by value.
NUMBER_EXCEPTIONS: dict[tuple[str, float], str] = {}

# English characters per Chinese character. Measured on the whole edition (137 passages):
# min 3.02, median 4.41, max 5.32. A passage outside the band is probably cut short or padded.
RATIO_BAND = (2.5, 6.0)

QUOTES_ZH = re.compile(r"[《》“”‘’\"'「」『』]")
DASHES = re.compile(r"[-‐‑‒–—―－]")


# --- data ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rows() -> list[dict]:
    lines = config.EN_FILE.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def passages() -> list[corpus.Passage]:
    return corpus.load_passages()


@pytest.fixture(scope="module")
def units(passages) -> dict[str, tuple[str, str]]:
    """id → (Chinese, English) for every passage and heading."""
    english = corpus.load_english()
    found = {p.id: (p.zh, p.en) for p in passages}
    found.update({hid: (title, english.get(hid, "")) for hid, title in corpus.headings().items()})
    return found


def document_order() -> list[str]:
    """Heading ids and passage ids in the order of the cleaned Chinese file."""
    order, seen = [], set()
    passage_ids = iter(p.id for p in corpus.load_passages())
    for path, _ in corpus.parse_clean(config.ZH_FILE.read_text(encoding="utf-8")):
        for i in range(len(path)):
            hid = corpus.heading_id(path[: i + 1])
            if hid not in seen:
                seen.add(hid)
                order.append(hid)
        order.append(next(passage_ids))
    return order


# --- alignment -----------------------------------------------------------------------------------

def test_every_line_is_an_id_en_object():
    for number, line in enumerate(config.EN_FILE.read_text(encoding="utf-8").splitlines(), 1):
        assert line.strip(), f"en.jsonl line {number} is blank"
        row = json.loads(line)
        assert {"id", "en"} <= set(row) <= {"id", "en", "note"}, f"en.jsonl line {number}: keys {sorted(row)}"
        assert all(isinstance(value, str) for value in row.values()), f"en.jsonl line {number}"


def test_ids_align_one_to_one(rows, units):
    counts = collections.Counter(row["id"] for row in rows)
    duplicates = sorted(i for i, n in counts.items() if n > 1)
    missing = sorted(set(units) - set(counts))
    orphans = sorted(set(counts) - set(units))
    assert not (duplicates or missing or orphans), (
        f"duplicates: {duplicates}\nmissing English: {missing}\norphan ids (no Chinese): {orphans}")


def test_lines_follow_document_order(rows):
    assert [row["id"] for row in rows] == document_order()


def test_heading_numbering_is_kept(units):
    """二、 → II., （二） → (2), 3. → 3., 专栏四 → Box 4; the annex's year headings stay the year."""
    roman = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X"]
    expected_prefix = {
        re.compile(r"^([一二三四五六七八九十]+)、"): lambda m: f"{roman[corpus.cn_number(m.group(1)) - 1]}.",
        corpus.SECTION_RE: lambda m: f"({corpus.cn_number(m.group(1))})",
        corpus.SUBSECTION_RE: lambda m: f"{m.group(1)}.",
        corpus.BOX_RE: lambda m: f"Box {corpus.cn_number(m.group(1))}",
        corpus.YEAR_RE: lambda m: m.group(1),
    }
    bad = []
    for hid, (zh, en) in units.items():
        if not hid.startswith("h-"):
            continue
        for pattern, prefix in expected_prefix.items():
            if match := pattern.match(zh):
                if not re.match(re.escape(prefix(match)) + r"(?!\d)", en):
                    bad.append(f"{hid}: {zh!r} → {en!r} (expected it to start with {prefix(match)!r})")
                break
    assert not bad, "\n".join(bad)


def test_english_is_non_empty_single_line(rows):
    bad = [row["id"] for row in rows
           if not row["en"].strip() or row["en"] != row["en"].strip()
           or re.search(r"[\n\r\u2028\u2029]", row["en"])]
    assert not bad, f"empty, padded or multi-line English: {bad}"


def test_translator_notes_are_single_lines_on_passages(rows):
    """A note belongs to a passage (it is shown on that passage's source card), never to a heading."""
    noted = [row for row in rows if "note" in row]
    assert noted, "no translator's notes (the UNEP memorandum's two terms need one)"
    bad = [row["id"] for row in noted if not row["id"].startswith("p-") or not row["note"].strip()
           or row["note"] != row["note"].strip() or re.search(r"[\n\r\u2028\u2029]", row["note"])]
    assert not bad, f"notes on headings, empty, padded or multi-line: {bad}"


def test_translator_notes_reach_passages_and_chunks(rows, passages):
    notes = {row["id"]: row["note"] for row in rows if "note" in row}
    assert {p.id: p.note for p in passages if p.note} == notes
    chunks = chunk_passages(passages)
    for pid, note in notes.items():
        holding = [c for c in chunks if pid in c.passage_ids]
        assert holding and all(note in c.notes for c in holding), pid
    assert all(set(c.notes) <= {notes.get(pid) for pid in c.passage_ids} for c in chunks)


def test_memorandum_with_unep_contradiction_is_noted(passages):
    """The report dates its memorandum with UNEP 2017–2022 in the body and 2019–2022 in the annex."""
    with_memorandum = [p for p in passages if "关于建设绿色“一带一路”的谅解备忘录" in p.zh]
    assert {p.id for p in with_memorandum} == {"p-1-1-1-001", "p-a-2016-007"}
    for passage in with_memorandum:
        assert "2017–2022" in passage.note and "2019–2022" in passage.note, passage.id


# --- numbers -------------------------------------------------------------------------------------

def missing_numbers(units) -> dict[tuple[str, float], str]:
    """(id, value) → Chinese surface text, for every Chinese value absent from the English."""
    missing = {}
    for uid, (zh, en) in units.items():
        english = [q.value for q in extract_numbers(en)]
        for q in extract_numbers(zh):
            if not any(same_value(q.value, v) for v in english):
                missing.setdefault((uid, q.value), q.text)
    return missing


def test_numbers_survive_translation(units):
    missing = {k: v for k, v in missing_numbers(units).items() if k not in NUMBER_EXCEPTIONS}
    report = "\n".join(f"  {uid}: {text!r} = {value:g} not in the English"
                       for (uid, value), text in sorted(missing.items()))
    assert not missing, (f"{len(missing)} Chinese numbers have no counterpart in en.jsonl (fix the "
                         f"translation, or list a real rendering difference in NUMBER_EXCEPTIONS):\n{report}")


def test_number_exceptions_are_still_needed(units):
    stale = sorted(set(NUMBER_EXCEPTIONS) - set(missing_numbers(units)))
    assert not stale, f"NUMBER_EXCEPTIONS entries no longer needed: {stale}"


# --- glossary ------------------------------------------------------------------------------------

def zh_key(text: str) -> str:
    """Chinese for matching: no title marks or quotes, no spaces, one kind of dash."""
    return DASHES.sub("-", re.sub(r"\s+", "", QUOTES_ZH.sub("", text)))


def en_key(text: str) -> str:
    """English for matching: lower case, one kind of dash and apostrophe, single spaces."""
    text = DASHES.sub("-", text.lower()).replace("’", "'").replace("‘", "'")
    return re.sub(r"\s+", " ", text)


def terms_in(zh: str, terms: tuple[glossary.Term, ...]) -> set[glossary.Term]:
    """Glossary terms occurring in ``zh``, except where an occurrence is part of a longer term's
    (联合国 inside 联合国人居署 = UN-Habitat, 一带一路 inside “一带一路”能源合作伙伴关系)."""
    text = zh_key(zh)
    hits = []
    for term in terms:
        key = zh_key(term.zh)
        if key:
            hits += [(m.start(), m.start() + len(key), term) for m in re.finditer(re.escape(key), text)]
    found = set()
    for start, end, term in hits:
        inside_longer = any(s <= start and end <= e and e - s > end - start for s, e, _ in hits)
        if not inside_longer:
            found.add(term)
    return found


def read_glossary_exceptions() -> list[dict[str, str]]:
    with open(GLOSSARY_EXCEPTIONS_FILE, encoding="utf-8", newline="") as handle:
        lines = [line for line in handle if line.strip() and not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))


def glossary_misses(units) -> set[tuple[str, str]]:
    terms = glossary.load_glossary()
    misses = set()
    for uid, (zh, en) in units.items():
        for term in terms_in(zh, terms):
            if en_key(term.en) not in en_key(en):
                misses.add((uid, term.zh))
    return misses


def test_glossary_terms_are_used(units):
    terms = {t.zh: t for t in glossary.load_glossary()}
    excepted = {(row["passage_id"], row["zh"]) for row in read_glossary_exceptions()}
    misses = sorted(glossary_misses(units) - excepted)
    report = "\n".join(f"  {uid}: {zh} → expected {terms[zh].en!r}" for uid, zh in misses)
    assert not misses, (
        f"{len(misses)} glossary terms are not rendered with their glossary English. Fix en.jsonl or "
        f"the glossary row, or record a justified exception (passage_id, zh, reason) in "
        f"{GLOSSARY_EXCEPTIONS_FILE.relative_to(config.PROJECT_ROOT)}:\n{report}")


def test_glossary_exceptions_are_valid_and_needed(units):
    terms = {t.zh for t in glossary.load_glossary()}
    misses = glossary_misses(units)
    for row in read_glossary_exceptions():
        where = f"{GLOSSARY_EXCEPTIONS_FILE.name}: {row}"
        assert row["passage_id"] in units, f"unknown id in {where}"
        assert row["zh"] in terms, f"not a glossary zh in {where}"
        assert row.get("reason", "").strip(), f"no reason in {where}"
        assert (row["passage_id"], row["zh"]) in misses, f"exception no longer needed: {where}"


def test_glossary_rows_are_well_formed():
    terms = glossary.load_glossary()
    assert terms, "empty glossary"
    for term in terms:
        assert term.zh == term.zh.strip() and term.en == term.en.strip(), term
        assert "\t" not in term.en and "\t" not in term.zh, term
    duplicates = [zh for zh, n in collections.Counter(t.zh for t in terms).items() if n > 1]
    assert not duplicates, f"duplicate glossary zh: {duplicates}"


def test_report_glossary_rows_not_in_corpus(units):
    """Allowed (they help query expansion), but listed so that useless rows can be pruned."""
    text = "\n".join(zh_key(zh) for zh, _ in units.values())
    unused = [t for t in glossary.load_glossary() if zh_key(t.zh) not in text]
    print(f"\n{len(unused)} glossary rows whose Chinese occurs nowhere in the corpus:")
    for term in unused:
        print(f"  {term.zh}\t{term.en}")


# --- length --------------------------------------------------------------------------------------

def test_length_ratio_is_plausible(passages):
    ratios = {p.id: len(p.en) / len(p.zh) for p in passages}
    low, high = RATIO_BAND
    outliers = {pid: r for pid, r in ratios.items() if not low <= r <= high}
    values = sorted(ratios.values())
    summary = f"min {values[0]:.2f}, median {statistics.median(values):.2f}, max {values[-1]:.2f}"
    print(f"\nEnglish/Chinese length ratio over {len(values)} passages: {summary}")
    report = "\n".join(f"  {pid}: {r:.2f}" for pid, r in sorted(outliers.items(), key=lambda kv: kv[1]))
    assert not outliers, (f"English/Chinese length ratio outside {RATIO_BAND} ({summary}); "
                          f"check these translations for omissions or additions:\n{report}")
