"""Measurements for docs/documents.md: PDF parsers compared, and the time to add 10 / 100 pages.

``rag bench --documents parsers`` compares text order, CJK correctness and speed of the PDF parsers that
are installed (pypdf, pdfplumber, PyMuPDF, markitdown) on a Chinese PDF (the report's own Chinese text,
typeset here with a TrueType CJK font and with reportlab's CID font) and an English one (the report's
English edition, and a real TeX-made manual from /usr/share/doc when present); ``rag bench --documents
add`` times ``rag add`` of 10 and 100 pages of distinct English text into an empty store.
Needs reportlab (the ``test`` extra). Prints Markdown tables.
"""
from __future__ import annotations

import difflib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from rag import config

WQY = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
REAL_ENGLISH = Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf")


def _paragraphs_zh() -> list[str]:
    from rag.corpus import load_passages

    return [p.zh for p in load_passages(config.ZH_FILE, config.EN_FILE)]


def _paragraphs_en() -> list[str]:
    rows = [json.loads(line) for line in config.EN_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row["en"] for row in rows if row.get("en")]


def typeset(path: Path, paragraphs: list[str], font: str, max_pages: int | None = None) -> int:
    """The paragraphs as an A4 PDF with a text layer (wrapped by width); returns its page count."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate
    from xml.sax.saxutils import escape

    if font == "wqy":
        pdfmetrics.registerFont(TTFont("wqy", str(WQY), subfontIndex=0))
    elif font == "STSong-Light":
        pdfmetrics.registerFont(UnicodeCIDFont(font))
    cjk = font != "Helvetica"
    style = ParagraphStyle("body", fontName=font, fontSize=10.5, leading=15, spaceAfter=6,
                           wordWrap="CJK" if cjk else None)
    story = [Paragraph(escape(p), style) for p in paragraphs]
    pages = []
    document = SimpleDocTemplate(str(path), pagesize=A4)
    document.build(story, onLaterPages=lambda c, d: pages.append(1), onFirstPage=lambda c, d: pages.append(1))
    if max_pages and len(pages) > max_pages:
        raise ValueError("too long")
    return len(pages)


def _extract(parser: str, path: Path) -> list[str]:
    if parser == "pypdf":
        from pypdf import PdfReader

        return [p.extract_text() or "" for p in PdfReader(path).pages]
    if parser == "pdfplumber":
        import pdfplumber

        with pdfplumber.open(path) as pdf:
            return [p.extract_text() or "" for p in pdf.pages]
    if parser == "pymupdf":
        import pymupdf

        with pymupdf.open(path) as pdf:
            return [page.get_text() for page in pdf]
    if parser == "markitdown":
        from markitdown import MarkItDown

        return [MarkItDown().convert(str(path)).text_content]
    raise ValueError(parser)


def _squeeze(text: str) -> str:
    return "".join(text.split())


def similarity(extracted: str, truth: str) -> float:
    """Share of the true text found in order (difflib on the texts without whitespace)."""
    a, b = _squeeze(extracted), _squeeze(truth)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / max(1, len(b))


def compare_parsers(parsers: list[str]) -> str:
    folder = Path(tempfile.mkdtemp(prefix="doc-bench-"))
    zh, en = _paragraphs_zh()[:60], _paragraphs_en()[:40]
    samples = []
    for name, paragraphs, font in (("Chinese (report text, TrueType WenQuanYi)", zh, "wqy"),
                                   ("Chinese (report text, CID STSong-Light)", zh, "STSong-Light"),
                                   ("English (report's English edition, Helvetica)", en, "Helvetica")):
        path = folder / f"{font}.pdf"
        pages = typeset(path, paragraphs, font)
        samples.append((name, path, pages, "\n".join(paragraphs)))
    if REAL_ENGLISH.exists():
        samples.append((f"English (real manual: {REAL_ENGLISH.name}, TeX)", REAL_ENGLISH, None, None))
    rows = ["| PDF | pages | parser | text in order (share of the source) | U+FFFD / CID garbage | seconds | pages/s |",
            "|---|---|---|---|---|---|---|"]
    for name, path, pages, truth in samples:
        for parser in parsers:
            try:
                start = time.perf_counter()
                texts = _extract(parser, path)
                seconds = time.perf_counter() - start
            except Exception as error:  # noqa: BLE001 - a parser that fails is a result too
                rows.append(f"| {name} | {pages or ''} | {parser} | failed: {type(error).__name__} | | | |")
                continue
            text = "\n".join(texts)
            count = pages or len(texts)
            order = f"{similarity(text, truth):.3f}" if truth else f"{len(_squeeze(text)):,} characters"
            garbage = text.count("\ufffd") + text.count("(cid:")
            rows.append(f"| {name} | {count} | {parser} | {order} | {garbage} | {seconds:.2f} | {count / seconds:.0f} |")
    return "\n".join(rows)


def time_adds(page_counts: tuple[int, ...] = (10, 100)) -> str:
    """``rag add`` of N distinct pages of English text into an empty store: seconds, passages."""
    from rag import collections

    from rag.embedding import get_embedder

    paragraphs = list(dict.fromkeys(_paragraphs_en() + _licence_paragraphs() + _manual_paragraphs()))  # distinct
    settings = config.load_settings()
    start = time.perf_counter()
    get_embedder(settings.embedder, settings.cache_dir).encode_passages(["warm-up"])  # as in a running app
    load = time.perf_counter() - start
    rows = [f"Embedder loaded first, once: {load:.1f} s (a fresh `rag add` process pays this too).", "",
            "| pages | characters | passages | sentences | read + cut s | embed s | total s to searchable | "
            "load average (1 min) |", "|---|---|---|---|---|---|---|---|"]
    for pages in page_counts:
        folder = Path(tempfile.mkdtemp(prefix="doc-add-"))
        path = folder / f"english-{pages}.pdf"
        text = _take_pages(path, paragraphs, pages)
        settings = config.load_settings(data_dir=folder / "store")
        stages: dict[str, float] = {}
        start = time.perf_counter()
        (result,) = collections.add_paths(settings, [path], progress=lambda name, stage, fraction: stages.setdefault(
            stage, time.perf_counter() - start))
        seconds = time.perf_counter() - start
        record = result.document
        cut = stages.get("embedding", seconds)
        rows.append(f"| {record['pages']} | {len(text):,} | {record['passages']} | {record['sentences']} | "
                    f"{cut:.1f} | {seconds - cut:.1f} | {seconds:.1f} | {os.getloadavg()[0]:.2f} |")
    return "\n".join(rows)


def _licence_paragraphs() -> list[str]:
    """Distinct English prose shipped with the system (the licence texts), paragraph by paragraph."""
    folder = Path("/usr/share/common-licenses")
    texts = [p.read_text(errors="ignore") for p in sorted(folder.iterdir()) if p.is_file()] if folder.exists() else []
    return [" ".join(p.split()) for text in texts for p in text.split("\n\n") if len(p.split()) > 5]


def _manual_paragraphs() -> list[str]:
    """The text of the real PDF manuals shipped in /usr/share/doc, paragraph by paragraph."""
    from pypdf import PdfReader

    paths = [REAL_ENGLISH, Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf")]
    return [" ".join(p.split()) for path in paths if path.exists() for page in PdfReader(path).pages
            for p in (page.extract_text() or "").split("\n\n") if len(p.split()) > 5]


def _take_pages(path: Path, paragraphs: list[str], pages: int) -> str:
    """Typeset the first paragraphs that fill ``pages`` pages (binary search on the paragraph count)."""
    low, high = 1, len(paragraphs)
    while low < high:
        middle = (low + high + 1) // 2
        if typeset(path, paragraphs[:middle], "Helvetica") <= pages:
            low = middle
        else:
            high = middle - 1
    typeset(path, paragraphs[:low], "Helvetica")
    return "\n".join(paragraphs[:low])


def main(argv: list[str]) -> int:
    if argv[:1] == ["parsers"]:
        print(compare_parsers(argv[1:] or ["pypdf", "pdfplumber", "pymupdf", "markitdown"]))
    elif argv[:1] == ["add"]:
        print(time_adds(tuple(int(n) for n in argv[1:]) or (10, 100)))
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
