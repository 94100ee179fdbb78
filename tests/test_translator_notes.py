"""Translator's notes (en.jsonl "note"): from the corpus through chunks and the index to the source cards."""
from __future__ import annotations

import dataclasses
import json

import pytest

from rag import config, corpus
from rag import conversation as conv
from rag.answer import Answer, Citation, citation_of
from rag.chunking import Chunk, Sentence, chunk_passages
from rag.index import read_manifest
from rag.passages import from_chunk

NOTED = "p-a-2016-007"  # the annex's UNEP memorandum, dated 2019–2022 (the body says 2017–2022)


@pytest.fixture(scope="module")
def chunks() -> list[Chunk]:
    return chunk_passages(corpus.load_passages())


def chunk_of(chunks: list[Chunk], passage_id: str) -> Chunk:
    return next(c for c in chunks if passage_id in c.passage_ids)


def citation_for(chunk: Chunk) -> Citation:
    sentence = chunk.zh.split("。")[0] + "。"
    start = chunk.zh.index(sentence)
    return citation_of(1, chunk, Sentence(sentence, "", (start, start + len(sentence))), True)


def test_chunk_json_keeps_notes_and_reads_rows_without_them(chunks):
    chunk = chunk_of(chunks, NOTED)
    assert any("2017–2022" in note and "2019–2022" in note for note in chunk.notes)
    assert Chunk.from_json(json.loads(json.dumps(chunk.to_json()))) == chunk
    row = {k: v for k, v in chunk.to_json().items() if k != "notes"}
    assert Chunk.from_json(row).notes == ()


def test_committed_index_carries_the_notes():
    manifest = read_manifest(config.PROJECT_ROOT / "embeddings")
    table = json.loads((config.PROJECT_ROOT / "embeddings" / manifest["files"]["chunks"]).read_text(encoding="utf-8"))
    notes = corpus.load_notes()
    for row in table["chunks"]:
        assert row.get("notes", []) == list(dict.fromkeys(notes[p] for p in row["passage_ids"] if p in notes)), row["id"]


def test_source_cards_show_the_notes(chunks):
    chunk = chunk_of(chunks, NOTED)
    answer = Answer(question="备忘录是哪年签的？", language="zh", answer="2016年12月。[1]", refused=False,
                    citations=[citation_for(chunk)], generator="extractive", timings={})
    (cited,) = conv.citation_passages(answer)
    found = from_chunk(1, chunk, score=0.5)
    closest = dataclasses.replace(answer, refused=True, citations=[], closest=[from_chunk(1, chunk)])
    (near,) = conv.closest_passages(closest)
    assert cited.notes == found.notes == near.notes == chunk.notes
    export = conv.conversation_markdown([conv.Turn("备忘录是哪年签的？", answer=answer, passages=[cited])])
    assert f"*Translator's note: {chunk.notes[0]}*" in export


def test_cards_without_notes_have_no_note_line(chunks):
    chunk = next(c for c in chunks if not c.notes)
    card = from_chunk(1, chunk, score=0.5)
    assert card.notes == ()
    turn = conv.Turn("q", mode="search", passages=[card])
    assert "Translator's note" not in conv.conversation_markdown([turn])

