"""Users' own documents end to end: real files made with real libraries (a four-page PDF in Chinese and
English, a DOCX, an HTML page, Markdown), through ``rag add`` / ``rag docs`` / ``rag search`` / ``rag ask`` /
``rag remove``; every bad input; a crash in the middle of an add; the report unchanged."""
from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import re
from pathlib import Path

import pytest

from rag import config

DATA = Path(__file__).parent / "data"
OWN = json.loads((DATA / "own_document.json").read_text(encoding="utf-8"))
OWN_QA = [json.loads(line) for line in (DATA / "own_document_qa.jsonl").read_text(encoding="utf-8").splitlines() if line]


# --------------------------------------------------------------------------------------------------
# Real files


def _wrap(text: str) -> list[str]:
    """Lines as a page lays them out: ~40 Chinese characters or ~90 Latin ones."""
    if any("\u4e00" <= ch <= "\u9fff" for ch in text):
        return [text[i:i + 40] for i in range(0, len(text), 40)]
    lines, line = [], ""
    for word in text.split():
        if len(line) + len(word) + 1 > 90:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line]


def make_pdf(path: Path, pages: list[list[str]], title: str = "") -> Path:
    """A PDF with a text layer (reportlab's built-in CID font STSong-Light draws Chinese and Latin)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.setTitle(title)
    for paragraphs in pages:
        pdf.setFont("STSong-Light", 10)
        y = 800
        for paragraph in paragraphs:
            for line in _wrap(paragraph):
                pdf.drawString(50, y, line)
                y -= 14
            y -= 10
        pdf.showPage()
    pdf.save()
    return path


def make_scanned_pdf(path: Path) -> Path:
    """A page that is only an image (what a scanner makes): no text layer."""
    from PIL import Image, ImageDraw
    from reportlab.pdfgen import canvas

    image = Image.new("L", (600, 200), 255)
    ImageDraw.Draw(image).rectangle((20, 20, 580, 60), fill=0)
    pdf = canvas.Canvas(str(path))
    pdf.drawInlineImage(image, 50, 500, width=500, height=160)
    pdf.showPage()
    pdf.save()
    return path


def make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Mombasa Port Green Berth Guidelines", level=1)
    document.add_heading("Shore power", level=2)
    document.add_paragraph("From 2024 every ship at the green berth must connect to shore power within 30 minutes "
                           "of mooring. The shore power station supplies 6.6 kV at 60 Hz.")
    document.add_heading("港口绿色泊位", level=2)
    document.add_paragraph("绿色泊位每年可减少船舶燃油消耗约1200吨。")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Berth", "Length"
    table.cell(1, 0).text, table.cell(1, 1).text = "Green berth 21", "240 metres"
    document.save(path)
    return path


def make_html(path: Path) -> Path:
    path.write_text("""<!doctype html><html><head><title>Nairobi Expressway</title><style>p{color:red}</style>
<script>var hidden = "never indexed";</script></head><body><nav>Home | About</nav>
<h1>Nairobi Expressway noise barriers</h1>
<p>The Nairobi Expressway has 4.2 kilometres of noise barriers made of recycled aluminium.</p>
<h2>Trees</h2><ul><li>Along the expressway 3,000 jacaranda trees were replanted after construction.</li></ul>
</body></html>""", encoding="utf-8")
    return path


def make_markdown(path: Path, extra: str = "") -> Path:
    path.write_text("# Lake Turkana wind farm notes\n\n## Turbines\n\nThe Lake Turkana wind farm has 365 "
                    "turbines of 850 kW each.\n\n## Birds\n\nA radar system stops turbines when flocks of "
                    "migrating birds approach.\n" + extra, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------
# Running the CLI in this process (the shipped embedder is loaded once for the whole module)


def rag(*argv: str, data: Path | None = None) -> tuple[int, str, str]:
    """``rag ARGV…`` with RAG_DATA_DIR=data (default: as set) for this call only."""
    from rag.cli import main

    out, err = io.StringIO(), io.StringIO()
    with (data_dir(data) if data else contextlib.nullcontext()), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def rag_json(*argv: str, data: Path | None = None):
    code, out, err = rag(*argv, "--json", data=data)
    return code, [json.loads(line) for line in out.splitlines() if line.strip()], err


@contextlib.contextmanager
def data_dir(path: Path, **environment: str):
    """RAG_DATA_DIR (and other RAG_* settings) for the block only."""
    saved = {key: os.environ.get(key) for key in ["RAG_DATA_DIR", *environment]}
    os.environ.update({"RAG_DATA_DIR": str(path), **environment})
    try:
        yield config.load_settings()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("files")
    return {"pdf": make_pdf(folder / "kisumu-eia.pdf", OWN["pages"], OWN["title"]), "docx": make_docx(folder / "mombasa.docx"),
            "html": make_html(folder / "expressway.html"), "md": make_markdown(folder / "turkana.md")}


@pytest.fixture(scope="module")
def store(tmp_path_factory, files):
    """A store holding the four documents, added by one ``rag add``: (settings, add results)."""
    path = tmp_path_factory.mktemp("store")
    code, results, err = rag_json("add", *map(str, files.values()), data=path)
    assert code == 0, err
    with data_dir(path) as settings:
        return settings, results


@pytest.fixture(scope="module")
def pipeline(store):
    from rag.answer import Pipeline

    return Pipeline(store[0])


# --------------------------------------------------------------------------------------------------
# Adding, listing, searching, answering, removing


def test_add_reads_every_format_with_pages(store):
    settings, results = store
    assert [r["status"] for r in results] == ["added"] * 4
    by_kind = {r["document"]["kind"]: r["document"] for r in results}
    assert by_kind["pdf"]["pages"] == 4 and by_kind["docx"]["pages"] is None
    assert by_kind["pdf"]["languages"] == ["en", "zh"]
    code, (listed,), _ = rag_json("docs", data=settings.data_dir)
    assert code == 0 and len(listed) == 4
    assert {"id", "collection", "name", "pages", "passages", "added", "sha256"} <= set(listed[0])
    assert {d["collection"] for d in listed} == {"my-documents"}


def test_chunks_keep_pages_headings_and_one_language(pipeline):
    chunks = [c for c in pipeline.retriever.chunks if c.document == "kisumu-eia.pdf"]
    assert [c.page for c in chunks] == sorted(c.page for c in chunks) and {c.page for c in chunks} == {1, 2, 3, 4}
    chinese = next(c for c in chunks if "7100万千瓦时" in c.zh)
    assert chinese.page == 2 and chinese.lang == "zh" and chinese.en == ""  # no English edition
    english = next(c for c in chunks if "620 workers" in c.zh)
    assert english.lang == "en" and english.en == english.zh
    docx_chunk = next(c for c in pipeline.retriever.chunks if "shore power" in c.zh)
    assert docx_chunk.section_zh[-1] == "Shore power"  # the DOCX heading
    html = next(c for c in pipeline.retriever.chunks if c.document == "expressway.html")
    assert "never indexed" not in html.zh and "Home | About" not in html.zh


def test_search_results_carry_their_source(store):
    code, (row,), _ = rag_json("search", "基苏木光伏园每年发电多少？", "-k", "3", data=store[0].data_dir)
    top = row["results"][0]
    assert top["source"] == {"collection": "my-documents", "document": "kisumu-eia.pdf", "page": 2}
    code, (row,), _ = rag_json("search", "蒙内铁路的桥梁为什么设计得那么高？", "-k", "3", data=store[0].data_dir)
    assert row["results"][0]["source"]["collection"] == config.REPORT_SLUG
    assert row["results"][0]["source"]["page"] is None


def test_collection_option_limits_the_search(store):
    _, (mine,), _ = rag_json("search", "Kisumu solar park workers", "--collection", "my-documents", "-k", "10", data=store[0].data_dir)
    assert {r["source"]["collection"] for r in mine["results"]} == {"my-documents"}
    _, (report,), _ = rag_json("search", "Kisumu solar park workers", "--collection", config.REPORT_SLUG, data=store[0].data_dir)
    assert {r["source"]["collection"] for r in report["results"]} == {config.REPORT_SLUG}
    code, _, err = rag("search", "anything", "--collection", "nope", data=store[0].data_dir)
    assert code == 2 and "no collection 'nope'" in err


def test_ask_cites_the_document_with_its_page(store):
    code, (answer,), err = rag_json("ask", "How many workers will the Kisumu solar site employ at peak "
                                           "construction?", "--generator", "extractive", data=store[0].data_dir)
    assert code == 0 and not answer["refused"], err
    cited = answer["citations"][0]
    assert "620" in cited["sentence_zh"]
    assert cited["source"] == {"collection": "my-documents", "document": "kisumu-eia.pdf", "page": 1}


def test_a_question_in_another_language_finds_a_chinese_passage(pipeline):
    """Through the multilingual embedder only: the passage has no English edition."""
    hits = pipeline.retriever.search("How long will the Kisumu solar park operate?", 5, collections=["my-documents"]).hits
    found = next(h.chunk for h in hits if "运营期为25年" in h.chunk.zh)
    assert found.en == "" and found.source["page"] == 4


def test_a_chinese_question_cites_a_chinese_sentence_of_the_document(pipeline):
    answer = pipeline.ask("基苏木光伏园项目每年可减少多少二氧化碳排放？", generator="extractive")
    assert not answer.refused and "5.2万吨" in answer.citations[0].sentence_zh
    assert answer.citations[0].sentence_en == ""  # a user document has no English edition
    assert answer.citations[0].source["page"] == 2


def test_report_questions_still_cite_the_report(pipeline):
    answer = pipeline.ask("卡洛特水电站何时投入商业运营？", generator="extractive")
    assert not answer.refused
    assert {c.source["collection"] for c in answer.citations} == {config.REPORT_SLUG}


def test_recall_of_questions_about_an_added_document(pipeline):
    """tests/data/own_document_qa.jsonl: questions in four languages about the PDF added above."""
    found = []
    for row in OWN_QA:
        hits = pipeline.retriever.search(row["question"], 5).hits
        found.append(any(row["evidence"] in h.chunk.zh for h in hits))
    same = [ok for row, ok in zip(OWN_QA, found) if same_language(row)]
    assert all(same) and sum(found) / len(found) >= 0.7, [row["id"] for row, ok in zip(OWN_QA, found) if not ok]


def same_language(row: dict) -> bool:
    """The question is in the language of the sentence that answers it (zh with zh, en with en)."""
    chinese = any("\u4e00" <= ch <= "\u9fff" for ch in row["evidence"])
    return row["lang"] == ("zh" if chinese else "en")


def test_adding_embeds_only_new_texts_and_remove_drops_them(tmp_path, files, monkeypatch):
    from rag import collections
    from rag.embedding import Embedder

    embedded: list[str] = []
    original = Embedder.encode_passages
    monkeypatch.setattr(Embedder, "encode_passages",
                        lambda self, texts, progress=False: embedded.extend(texts) or original(self, texts, progress))
    with data_dir(tmp_path) as settings:
        collections.add_paths(settings, [files["md"]])
        first = len(embedded)
        longer = make_markdown(tmp_path / "turkana-v2.md", "\n## Roads\n\nThe farm built 200 km of new road.\n")
        (result,) = collections.add_paths(settings, [longer], "editions")
        assert result.status == "added" and result.document["collection"] == "editions"
        assert 0 < len(embedded) - first <= 3  # the new section's chunk and sentence, nothing already stored
        from rag.retrieval import Retriever

        embedded.clear()
        retriever = Retriever(settings, progress=False)
        assert embedded == []  # the report is never embedded again; neither are the documents
        assert len(retriever.chunks) == len(retriever.index.chunks)
        code, out, _ = rag("remove", result.document["id"])
        assert code == 0 and "removed" in out
        assert [d["name"] for d in collections.documents(settings)] == ["turkana.md"]
        assert len(list((tmp_path / "docs").iterdir())) == 2  # only the first document's two files remain


# --------------------------------------------------------------------------------------------------
# Bad input, nothing lost


def test_each_bad_input_gets_one_message_and_the_good_file_goes_in(tmp_path, files):
    from pypdf import PdfReader, PdfWriter

    bad = tmp_path / "bad"
    bad.mkdir()
    writer = PdfWriter()
    writer.append(PdfReader(files["pdf"]))
    writer.encrypt("secret")
    writer.write(bad / "locked.pdf")
    (bad / "corrupt.pdf").write_bytes(files["pdf"].read_bytes()[:600])
    (bad / "notapdf.pdf").write_bytes(b"%PDF-1.4\nthis is not a pdf at all\n")
    make_scanned_pdf(bad / "scan.pdf")
    (bad / "empty.txt").write_bytes(b"")
    (bad / "slides.pptx").write_bytes(b"PK\x03\x04 not really")
    (bad / "big.txt").write_text("word " * 300_000)  # 1.5 MB
    names = ["locked.pdf", "corrupt.pdf", "notapdf.pdf", "scan.pdf", "empty.txt", "slides.pptx", "big.txt"]
    with data_dir(tmp_path / "store", RAG_MAX_DOCUMENT_MB="1", RAG_MAX_DOCUMENT_PAGES="3"):
        code, results, err = rag_json("add", *(str(bad / n) for n in names), str(files["pdf"]),
                                      str(files["html"]), str(files["html"]))
        messages = {r["name"]: r["message"] for r in results}
        assert code == 1 and "Traceback" not in err
        assert [r["status"] for r in results] == ["error"] * 8 + ["added", "duplicate"]
        assert "encrypted" in messages["locked.pdf"]
        assert "damaged" in messages["corrupt.pdf"] and "damaged" in messages["notapdf.pdf"]
        assert "no text layer" in messages["scan.pdf"] and "OCR" in messages["scan.pdf"]
        assert "empty" in messages["empty.txt"]
        assert "unsupported file type '.pptx'" in messages["slides.pptx"]
        assert "over the limit of 1 MB" in messages["big.txt"]
        assert "4 pages is over the limit of 3" in messages["kisumu-eia.pdf"]
        assert "already added" in results[-1]["message"]
        assert all("\n" not in m for m in messages.values())
        _, (listed,), _ = rag_json("docs")
        assert [d["name"] for d in listed] == ["expressway.html"]


def test_a_crash_mid_add_leaves_the_previous_store_usable(tmp_path, files, monkeypatch):
    from rag import collections

    with data_dir(tmp_path) as settings:
        collections.add_paths(settings, [files["html"]])
        registry = (tmp_path / "registry.json").read_bytes()

        def crash(settings, registry):
            raise KeyboardInterrupt  # the process dies after writing the new document's files

        monkeypatch.setattr(collections, "_publish", crash)
        with pytest.raises(KeyboardInterrupt):
            collections.add_paths(settings, [files["md"]])
        assert (tmp_path / "registry.json").read_bytes() == registry
        assert len(list((tmp_path / "docs").iterdir())) == 4  # the half-added document's files, unnamed
        view = collections.load_documents(settings)
        assert {c.document for c in view.chunks} == {"expressway.html"}
        monkeypatch.undo()
        (result,) = collections.add_paths(settings, [files["md"]])  # the next add cleans up and succeeds
        assert result.status == "added" and len(list((tmp_path / "docs").iterdir())) == 4


# --------------------------------------------------------------------------------------------------
# The report is unchanged


def test_without_documents_the_report_index_is_used_as_is(retriever, settings):
    from rag.collections import combined_index

    assert combined_index(retriever.index, settings) is retriever.index
    assert set(retriever.chunks[0].to_json()) == {"id", "passage_ids", "section_zh", "section_en", "zh", "en", "notes"}
    assert retriever.has_english


def test_the_combined_index_type_follows_the_number_of_vectors(store, retriever, monkeypatch):
    import faiss

    from rag import index
    from rag.collections import combined_index

    settings = store[0]
    assert isinstance(combined_index(retriever.index, settings).faiss_index, faiss.IndexFlatIP)
    monkeypatch.setattr(index, "FLAT_MAX_VECTORS", 100)
    combined = combined_index(retriever.index, settings)
    assert isinstance(combined.faiss_index, faiss.IndexHNSWFlat)
    assert combined.faiss_index.ntotal == retriever.index.faiss_index.ntotal + len(combined.chunks) - len(
        retriever.chunks)




# --------------------------------------------------------------------------------------------------
# The app's Documents panel and source cards


def test_panel_helpers():
    from rag import doc_panel

    source = {"collection": "my-documents", "document": "kisumu-eia.pdf", "page": 2}
    assert doc_panel.source_line(source) == "my-documents · kisumu-eia.pdf · page 2"
    assert doc_panel.source_line({**source, "page": None}) == "my-documents · kisumu-eia.pdf"
    assert doc_panel.source_line({"collection": config.REPORT_SLUG, "document": "r", "page": None}) == ""
    assert [doc_panel.progress_value(s, f) for s, f in [("reading", 0), ("embedding", 0.5), ("done", 1)]] == [
        0.05, pytest.approx(0.575), 1.0]
    assert doc_panel.progress_text("a.pdf", "embedding", 0.5) == "a.pdf: embedding 50%"
    assert {"pdf", "docx", "html", "md", "txt"} <= set(doc_panel.UPLOAD_TYPES)
    assert doc_panel.result_level("error") == "warning"


def test_app_lists_searches_cites_and_removes_a_document(tmp_path, files, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from rag import collections, doc_panel
    from rag import conversation as conv

    monkeypatch.setenv("RAG_GENERATOR", "extractive")
    with data_dir(tmp_path) as settings:
        (added,) = collections.add_paths(settings, [files["html"]])
        at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=600)
        at.run()
        assert not at.exception
        captions = "\n".join(c.value for c in at.sidebar.caption)
        assert conv.escape_markdown("expressway.html · my-documents · 2 passages") in captions
        assert at.get("file_uploader")  # uploads are on by default
        searched = at.sidebar.multiselect(key="collections")
        assert searched.value == [config.REPORT_SLUG, "my-documents"]
        searched.set_value(["my-documents"]).run()
        at.chat_input[0].set_value("How long are the noise barriers of the Nairobi Expressway?").run()
        assert not at.exception, [e.value for e in at.exception]
        turn = at.session_state["turns"][-1]
        assert not turn.answer.refused and turn.answer.citations[0].source["document"] == "expressway.html"
        page = "\n".join(c.value for c in at.caption)
        assert conv.escape_markdown(doc_panel.OWN_TEXT_NOTE) in page
        assert conv.escape_markdown("my-documents · expressway.html") in page
        at.sidebar.button(key=f"remove-{added.document['id']}").click().run()
        assert not at.exception and collections.documents(settings) == []
        assert not at.sidebar.multiselect  # only the report left: nothing to choose


def test_a_refusal_over_documents_does_not_say_the_report_alone(pipeline):
    """Searched with the user's documents, "not in the report" would be untrue; the report alone, it is."""
    from rag import prompts

    question = "How many hospitals does the Kisumu Solar Park supply?"
    answer = pipeline.ask(question, generator="extractive")
    assert answer.outcome == "not_in_report"
    assert answer.answer.startswith(prompts.REFUSALS_DOCUMENTS["en"].split(" {")[0])
    alone = pipeline.ask(question, generator="extractive", collections=[config.REPORT_SLUG])
    assert alone.refused and "documents searched" not in alone.answer
    elsewhere = pipeline.ask("What is the capital of France?", generator="extractive")
    assert elsewhere.outcome == "out_of_scope" and elsewhere.answer == prompts.OUT_OF_SCOPE_DOCUMENTS["en"]


def test_a_quote_from_a_document_is_not_labelled_as_the_report(pipeline):
    from rag import prompts

    answer = pipeline.ask("How many workers will the Kisumu solar site employ at peak construction?",
                          generator="extractive")
    assert answer.outcome == "quoted" and prompts.DOCUMENT_LABELS["en"] in answer.answer
    assert "the report" not in answer.answer


def test_collection_is_an_option_of_search_ask_chat_and_eval(store):
    from rag.cli import build_parser
    from rag.documents_cli import with_collections

    for verb in (["search", "q"], ["ask", "q"], ["chat"], ["eval"]):
        args = build_parser().parse_args([*verb, "--collection", "a", "--collection", "b"])
        assert args.collection == ["a", "b"]
    settings = with_collections(store[0], ["my-documents", config.REPORT_SLUG, "my-documents"])
    assert settings.collections == f"my-documents,{config.REPORT_SLUG}"
    assert with_collections(store[0], None) is store[0]


def test_adding_a_document_does_not_block_questions(pipeline, tmp_path):
    """An add (another session's) embeds in batches; questions asked meanwhile are answered between them."""
    import threading
    import time

    from rag import collections

    # every sentence made distinct (a repeated text is embedded once), so the add runs several batches
    notes = itertools.count()
    pages = [[re.sub(r"([.。])(?=\s|$)", lambda end: f" (annex {n}-{next(notes)}){end.group(1)}", paragraph)
              for paragraph in page] for n in range(10) for page in OWN["pages"]]
    path = make_pdf(tmp_path / "annexes.pdf", pages, "Kisumu annexes")
    stages: list[tuple[str, float]] = []
    with data_dir(tmp_path / "store") as settings:
        adder = threading.Thread(target=collections.add_paths, args=(settings, [path]),
                                 kwargs={"progress": lambda name, stage, f: stages.append((stage, time.perf_counter()))})
        adder.start()
        answered = []
        while adder.is_alive():
            start = time.perf_counter()
            pipeline.retriever.search("How many workers at peak construction in Kisumu?", 5)
            answered.append((start, time.perf_counter()))
        adder.join()
    times = dict(stages)  # the last time of each stage
    assert sum(stage == "embedding" for stage, _ in stages) >= 3  # two batches or more, then 100%
    during = [(a, b) for a, b in answered if times["cutting"] < a and b < times["done"]]
    assert len(during) >= 2, (stages, answered)  # answered between batches, not after the add
    assert max(b - a for a, b in during) < 10  # at most a batch's wait, never the whole add


def test_a_folder_adds_its_supported_files(tmp_path, files):
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    make_markdown(folder / "sub" / "notes.md")
    (folder / "README.txt").write_text("The Garissa solar plant in Kenya has 206,272 panels.\n", encoding="utf-8")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff")  # not a document: skipped, not an error
    code, results, err = rag_json("add", str(folder), "--collection", "field-notes", data=tmp_path / "store")
    assert code == 0 and [r["name"] for r in results] == ["README.txt", "notes.md"], err
    code, out, _ = rag("docs", data=tmp_path / "store")
    assert code == 0 and out.count("field-notes") == 2
    code, _, err = rag("add", str(folder), "--collection", config.REPORT_SLUG, data=tmp_path / "store")
    assert code == 2 and "built-in report" in err


def test_uploads_switched_off_leave_a_read_only_panel(tmp_path, files, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from rag import collections

    monkeypatch.setenv("RAG_GENERATOR", "extractive")
    monkeypatch.setenv("RAG_UPLOADS", "false")
    with data_dir(tmp_path) as settings:
        collections.add_paths(settings, [files["html"]])
        at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=600)
        at.run()
        assert not at.exception
        assert not at.get("file_uploader") and not [b for b in at.sidebar.button if (b.key or "").startswith("remove-")]
        assert "expressway" in "\n".join(c.value for c in at.sidebar.caption)
