import re

from rag import config, corpus

CJK_RE = re.compile(r"[\u4e00-\u9fff]")


def source_body() -> str:
    text = config.SOURCE_REPORT.read_text(encoding="utf-8")
    return text[text.index("# 前 言"):]


def in_order_share(source: str, cleaned: str) -> float:
    """Share of the source's CJK characters found, in order, in the cleaned text."""
    wanted, have = CJK_RE.findall(source), "".join(CJK_RE.findall(cleaned))
    found, position = 0, 0
    for char in wanted:
        hit = have.find(char, position, position + 200)  # a small window: order must be kept
        if hit >= 0:
            found, position = found + 1, hit + 1
    return found / len(wanted)


def test_committed_corpus_is_the_cleaner_output():
    cleaned = corpus.clean_report(config.SOURCE_REPORT.read_text(encoding="utf-8"))
    assert config.ZH_FILE.read_text(encoding="utf-8") == cleaned


def test_no_body_text_lost():
    assert in_order_share(source_body(), config.ZH_FILE.read_text(encoding="utf-8")) >= 0.995


def test_front_matter_dropped_and_markup_gone():
    cleaned = config.ZH_FILE.read_text(encoding="utf-8")
    for marker in ("ISBN", "CIP", "目 录", "版权所有", "**", "....."):
        assert marker not in cleaned


def test_no_page_break_fragments_left():
    for passage in corpus.load_passages():
        assert passage.zh.endswith(corpus.SENTENCE_END), passage.id
    # the PDF split 《对 / 外投资合作绿色发展工作指引》 across pages
    assert "《对外投资合作绿色发展工作指引》" in config.ZH_FILE.read_text(encoding="utf-8")


def test_heading_hierarchy():
    titles = {path[-1].title: path for path, _ in corpus.parse_clean(config.ZH_FILE.read_text(encoding="utf-8"))}
    railway = titles["（一）蒙内铁路"]
    assert [h.level for h in railway] == [1, 2, 3, 4, 5]
    assert railway[3].title.startswith("专栏一")
    # a section heading right after a box (PDF gave it the box's level) is back on level 2
    assert [h.level for h in titles["1. 共建可再生能源项目"]] == [1, 2, 3]
    assert titles["2023年"][0].title == "附件 绿色丝绸之路发展大事记"
    parts = {path[0].title for path in titles.values()}
    assert parts == {"前言", "一、发展成效", "二、发展启示", "三、发展展望", "附件 绿色丝绸之路发展大事记"}


def test_passage_ids_are_stable_unique_and_readable():
    first, second = corpus.load_passages(), corpus.load_passages()
    assert [p.id for p in first] == [p.id for p in second]
    assert len({p.id for p in first}) == len(first)
    assert all(re.fullmatch(r"p-[0-9a]+(-(b?\d+))*-\d{3}", p.id) for p in first)
    by_id = {p.id: p for p in first}
    assert by_id["p-1-2-1-b1-1-001"].zh.startswith("蒙内铁路")
    assert by_id["p-0-001"].section_zh == ("前言",)


def test_english_is_picked_up_when_present(tmp_path):
    missing = corpus.load_passages(en_path=tmp_path / "none.jsonl")
    assert all(p.en == "" and p.section_en == () for p in missing)
    aligned = tmp_path / "en.jsonl"
    aligned.write_text('{"id": "p-0-001", "en": "Preface text."}\n{"id": "h-0", "en": "Preface"}\n', encoding="utf-8")
    passages = {p.id: p for p in corpus.load_passages(en_path=aligned)}
    assert passages["p-0-001"].en == "Preface text."
    assert passages["p-0-001"].section_en == ("Preface",)
