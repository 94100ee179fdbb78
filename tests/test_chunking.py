from rag import corpus
from rag.chunking import chunk_passages, split_en_sentences, split_zh_sentences


def test_chunks_cover_every_passage_once_in_order():
    passages = corpus.load_passages()
    chunks = chunk_passages(passages)
    covered = [pid for c in chunks for pid in dict.fromkeys(c.passage_ids)]
    assert list(dict.fromkeys(covered)) == [p.id for p in passages]
    by_id = {p.id: p.zh for p in passages}
    rebuilt: dict[str, str] = {}
    for chunk in chunks:
        if len(chunk.passage_ids) == 1:
            rebuilt[chunk.passage_ids[0]] = rebuilt.get(chunk.passage_ids[0], "") + chunk.zh
        else:
            assert chunk.zh == "\n".join(by_id[p] for p in chunk.passage_ids)
    assert all(rebuilt[pid] == by_id[pid] for pid in rebuilt)


def test_chunk_sizes_and_sections():
    passages = corpus.load_passages()
    section_of = {p.id: p.section_zh for p in passages}
    chunks = chunk_passages(passages, 150, 450)
    assert all(len(c.zh.replace("\n", "")) <= 450 for c in chunks)
    # below 150 only where a whole section (or a split remainder) is that short
    assert sum(len(c.zh) < 150 for c in chunks) <= len(chunks) * 0.05
    for chunk in chunks:
        assert {section_of[p] for p in chunk.passage_ids} == {chunk.section_zh}
    assert len({c.id for c in chunks}) == len(chunks)


def test_embed_text_starts_with_section_path():
    chunk = next(c for c in chunk_passages(corpus.load_passages()) if "蒙内铁路" in c.section)
    assert chunk.embed_text("zh").startswith("一、发展成效 > ")
    assert "（一）蒙内铁路\n" in chunk.embed_text("zh")


def test_sentence_splitters():
    assert split_zh_sentences("第一句。第二句；“第三句！”尾巴") == ["第一句。", "第二句；", "“第三句！”", "尾巴"]
    assert split_en_sentences("It rose 2.5%. Then U.N. staff came. Done!") == ["It rose 2.5%.", "Then U.N. staff came.", "Done!"]
