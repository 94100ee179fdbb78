"""Users' own documents read into text: PDF (text layer, pages kept), DOCX, HTML, Markdown, plain text.

``read_document(path, settings)`` returns a ``Document``: its blocks of text in reading order, each with
the headings above it and the page it starts on (PDFs only). Every bad input raises ``DocumentError``
with one plain sentence: too large, too many pages, encrypted, corrupt, scanned (no text layer; there is
no OCR), an unsupported type, empty. ``document_passages`` cuts the blocks into passages the report's
chunker (rag/chunking.py) then groups within a section, as it does for the report.

Parsers (measured in docs/documents.md): pypdf (BSD-3) for PDFs, python-docx (MIT) for DOCX,
BeautifulSoup (MIT) with lxml for HTML, markdown-it-py (MIT, already a Streamlit dependency) for Markdown.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from pathlib import Path

from rag import config
from rag.errors import UserError
from rag.language import HAN_RE

log = logging.getLogger(__name__)
KINDS = {".pdf": "pdf", ".docx": "docx", ".html": "html", ".htm": "html", ".md": "markdown",
         ".markdown": "markdown", ".txt": "text", ".text": "text"}
END_MARKS = tuple("。！？!?.：:;；…”\"'）)")  # a line ending in one of these may end a paragraph
# A PDF line shorter than this share of the page's longest line, ending a sentence, ends its paragraph:
# wrapped lines fill the column; a paragraph's last line rarely does.
SHORT_LINE = 0.8
# English text is about 4.4 times longer in characters than the same Chinese (measured on the report:
# 107,040 English characters for 24,325 Chinese), so the chunk bounds, set in Chinese characters, are
# multiplied by this for other languages to keep passages of about the same content.
NON_CJK_CHARS_PER_CJK = 4


class DocumentError(UserError, ValueError):
    """A file that cannot be added; the message says why in one sentence (names the file)."""


@dataclasses.dataclass(frozen=True)
class Block:
    text: str
    headings: tuple[str, ...] = ()  # the headings above the block, outermost first
    page: int | None = None  # 1-based page the block starts on (PDFs)


@dataclasses.dataclass(frozen=True)
class Document:
    name: str  # the file name
    kind: str  # pdf | docx | html | markdown | text
    sha256: str
    pages: int | None  # number of pages (PDFs); None where there are none
    blocks: list[Block]
    title: str = ""  # the file's own title (PDF/DOCX metadata, HTML <title>), "" when it has none

    @property
    def heading(self) -> str:
        """The top of every passage's section path: the title when there is one, else the file name. Its
        words are embedded with each passage, so a question in another language naming the document's
        subject finds a passage written in one language only."""
        return self.title or self.name

    @property
    def characters(self) -> int:
        return sum(len(b.text) for b in self.blocks)


def document_kind(path: Path) -> str:
    kind = KINDS.get(path.suffix.lower())
    if kind is None:
        raise DocumentError(f"{path.name}: unsupported file type {path.suffix or '(none)'!r}; "
                            f"add a PDF, DOCX, HTML, Markdown or text file")
    return kind


def read_document(path: Path, settings: config.Settings, data: bytes | None = None, name: str | None = None) -> Document:
    """The document at ``path`` (or ``data``, an upload, named ``name``) as text blocks, or a DocumentError."""
    name = name or path.name
    kind = document_kind(Path(name))
    if data is None:
        try:
            _check_size(name, path.stat().st_size, settings)  # before reading: a huge file is never loaded
            data = path.read_bytes()
        except OSError as error:
            raise DocumentError(f"{name}: cannot read the file ({error.strerror})") from None
    _check_size(name, len(data), settings)
    if not data.strip():
        raise DocumentError(f"{name}: the file is empty")
    reader = {"pdf": _read_pdf, "docx": _read_docx, "html": _read_html, "markdown": _read_markdown,
              "text": _read_text}[kind]
    pages, blocks, title = reader(data, name, settings)
    blocks = [b for b in blocks if b.text.strip()]
    if not blocks:
        raise DocumentError(f"{name}: the file has no text")
    title = " ".join((title or "").split())
    if title.lower() in ("untitled", "(anonymous)", "anonymous", "") or title.lower().endswith((".doc", ".docx")):
        title = ""  # the placeholders that writers put in the title field
    return Document(name, kind, hashlib.sha256(data).hexdigest(), pages, blocks, title[:200])


def _check_size(name: str, size: int, settings: config.Settings) -> None:
    if size > settings.max_document_mb * 1024 * 1024:
        raise DocumentError(f"{name}: {size / 1024 / 1024:.1f} MB is over the limit of "
                            f"{settings.max_document_mb:g} MB (RAG_MAX_DOCUMENT_MB)")


# --------------------------------------------------------------------------------------------------
# PDF


def _read_pdf(data: bytes, name: str, settings: config.Settings) -> tuple[int, list[Block], str]:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # warnings on every odd font; our message says enough
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _decrypts(reader):
            raise DocumentError(f"{name}: the PDF is encrypted (password-protected); save an unprotected copy")
        count = len(reader.pages)
        if count > settings.max_document_pages:
            raise DocumentError(f"{name}: {count} pages is over the limit of {settings.max_document_pages} "
                                f"pages (RAG_MAX_DOCUMENT_PAGES)")
        texts = [page.extract_text() or "" for page in reader.pages]
        title = str((reader.metadata or {}).get("/Title") or "")
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, AssertionError, IndexError) as error:
        log.debug("pdf read failed", exc_info=True)
        raise DocumentError(f"{name}: the PDF is damaged or not a PDF ({type(error).__name__})") from None
    if not any(_letters(t) for t in texts):
        raise DocumentError(f"{name}: the PDF has no text layer (a scan?); text cannot be read from images "
                            f"(no OCR): add a PDF with text, or its text")
    return count, _pdf_blocks(texts), title


def _decrypts(reader) -> bool:
    """Some PDFs are encrypted with an empty user password (printing restrictions only): those open."""
    try:
        return bool(reader.decrypt(""))
    except Exception:  # noqa: BLE001 - pypdf raises several kinds (unsupported algorithm, missing crypto)
        return False


def _letters(text: str) -> int:
    return sum(ch.isalnum() for ch in text)


def _join(left: str, right: str) -> str:
    """Two pieces of one paragraph: no space between Chinese characters, one elsewhere."""
    if not left:
        return right
    if left.endswith("-") and right[:1].islower():  # a hyphenated word wrapped at the line end
        return left[:-1] + right
    cjk = HAN_RE.match(left[-1]) or HAN_RE.match(right[:1]) or left[-1] in "，。；：、" or right[:1] in "，。；：、"
    return left + ("" if cjk else " ") + right


def _pdf_blocks(texts: list[str]) -> list[Block]:
    """Paragraphs from each page's lines; a paragraph cut by a page break is joined (it keeps its first page)."""
    blocks: list[Block] = []
    open_text, open_page = "", None
    for number, text in enumerate(texts, start=1):
        lines = [" ".join(line.split()) for line in text.splitlines()]
        width = max((len(line) for line in lines), default=0)
        for line in lines:
            if not line:
                if open_text and open_text.endswith(END_MARKS):  # a blank line ends a finished paragraph
                    blocks.append(Block(open_text, (), open_page))
                    open_text = ""
                continue
            if not open_text:
                open_page = number
            open_text = _join(open_text, line)
            if line.endswith(END_MARKS) and len(line) < SHORT_LINE * width:
                blocks.append(Block(open_text, (), open_page))
                open_text = ""
        if open_text and open_text.endswith(END_MARKS):  # a page break after a finished sentence ends it;
            blocks.append(Block(open_text, (), open_page))  # an unfinished paragraph continues on the next page
            open_text = ""
    if open_text:
        blocks.append(Block(open_text, (), open_page))
    return blocks


# --------------------------------------------------------------------------------------------------
# DOCX, HTML, Markdown, text


def _read_docx(data: bytes, name: str, settings: config.Settings) -> tuple[None, list[Block], str]:
    import io
    import zipfile

    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise DocumentError(f"{name}: the Word file is damaged or not a DOCX ({type(error).__name__})") from None
    blocks, headings = [], []
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            for row in item.rows:
                cells = list(dict.fromkeys(c.text.strip() for c in row.cells if c.text.strip()))
                if cells:
                    blocks.append(Block(" | ".join(cells), tuple(headings)))
            continue
        assert isinstance(item, Paragraph)
        text = " ".join(item.text.split())
        style = (item.style.name if item.style is not None else "") or ""
        level = _heading_level(style)
        if level and text:
            headings = headings[:level - 1] + [text]
        elif text:
            blocks.append(Block(text, tuple(headings)))
    return None, blocks, document.core_properties.title or ""


def _heading_level(style: str) -> int:
    match = re.fullmatch(r"(?:Heading|标题)\s*(\d)", style.strip(), re.IGNORECASE)
    return int(match.group(1)) if match else (1 if style.strip().lower() == "title" else 0)


HTML_BLOCKS = ("p", "li", "td", "th", "pre", "blockquote", "dd", "dt", "figcaption", "caption")
HTML_DROP = ("script", "style", "noscript", "nav", "header", "footer", "form", "svg", "template")


def _read_html(data: bytes, name: str, settings: config.Settings) -> tuple[None, list[Block], str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "lxml")
    title = soup.title.get_text(" ") if soup.title else ""
    for tag in soup(HTML_DROP):
        tag.decompose()
    blocks, headings = [], []
    body = soup.body or soup
    for element in body.find_all(["h1", "h2", "h3", "h4", "h5", "h6", *HTML_BLOCKS]):
        if element.find_parent(HTML_BLOCKS):  # a paragraph inside a list item or cell: read once, with it
            continue
        text = " ".join(element.get_text(" ").split())
        if not text:
            continue
        if element.name[0] == "h" and element.name[1:].isdigit():
            level = int(element.name[1])
            headings = headings[:level - 1] + [text]
        else:
            blocks.append(Block(text, tuple(headings)))
    if not blocks:  # text outside any paragraph tag
        text = " ".join(body.get_text(" ").split())
        blocks = [Block(text)] if text else []
    return None, blocks, title


def _read_markdown(data: bytes, name: str, settings: config.Settings) -> tuple[None, list[Block], str]:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(_decode(data, name))
    blocks, headings, level = [], [], 0
    for position, token in enumerate(tokens):
        if token.type == "heading_open":
            level = int(token.tag[1])
        elif token.type == "inline":
            text = " ".join(token.content.split())
            text = re.sub(r"[*_`]+", "", re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text))  # links, emphasis
            if not text:
                continue
            if tokens[position - 1].type == "heading_open":
                headings = headings[:level - 1] + [text]
            else:
                blocks.append(Block(text, tuple(headings)))
        elif token.type in ("fence", "code_block") and token.content.strip():
            blocks.append(Block(token.content.strip(), tuple(headings)))
    titles = [tokens[i + 1].content for i, t in enumerate(tokens[:-1]) if t.type == "heading_open" and t.tag == "h1"]
    return None, blocks, titles[0] if titles else ""


def _read_text(data: bytes, name: str, settings: config.Settings) -> tuple[None, list[Block], str]:
    text = _decode(data, name)
    paragraphs = re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
    blocks = []
    for paragraph in paragraphs:
        joined = ""
        for line in paragraph.splitlines():
            if line.strip():
                joined = _join(joined, " ".join(line.split()))
        if joined:
            blocks.append(Block(joined))
    return None, blocks, ""


def _decode(data: bytes, name: str) -> str:
    for encoding in ("utf-8-sig", "gb18030"):  # gb18030 reads GBK/GB2312, the usual Chinese encodings
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" not in text:
            return text
    raise DocumentError(f"{name}: the file is not text (neither UTF-8 nor GB18030)")


# --------------------------------------------------------------------------------------------------
# Passages and chunks

CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
CJK_SHARE = 0.3  # a text is read as Chinese/Japanese when this share of its letters are CJK characters


def text_language(text: str) -> str:
    """"zh" / "ja" for CJK text (the report's Chinese rules apply), else the language langid finds."""
    from rag.language import detect_language

    sample = text[:1000]
    letters = max(1, sum(ch.isalpha() for ch in sample))
    if len(CJK_RE.findall(sample)) / letters >= CJK_SHARE:
        return "ja" if re.search(r"[\u3040-\u30ff]", sample) else "zh"
    return detect_language(sample)


def document_chunks(document: Document, doc_id: str, collection: str, min_chars: int, max_chars: int) -> list:
    """The document's chunks, by the report's rules (rag/chunking.py: never across a heading, short passages
    of one section merged, long ones split at sentence ends), each run of one script chunked on its own.
    Bounds are in Chinese characters; other languages get NON_CJK_CHARS_PER_CJK times as many."""
    import itertools

    from rag.chunking import _pack, chunk_passages
    from rag.corpus import Passage
    from rag.sentences import split_sentences

    passages, pages, languages = [], {}, {}
    for block in document.blocks:
        language = text_language(block.text)
        cjk = language in ("zh", "ja")
        limit = max_chars * (1 if cjk else NON_CJK_CHARS_PER_CJK)
        pieces = [block.text]
        if len(block.text) > limit:
            pieces = [("" if cjk else " ").join(group)
                      for group in _pack(split_sentences(block.text, semicolons=cjk), limit)]
        for piece in pieces:
            passage_id = f"p-{doc_id}-{len(passages) + 1:04d}"
            headings = block.headings[1:] if block.headings[:1] == (document.heading,) else block.headings
            section = (document.heading, *headings)
            passages.append(Passage(passage_id, section, piece, section, "" if cjk else piece))
            pages[passage_id], languages[passage_id] = block.page, language
    chunks = []
    for cjk, run in itertools.groupby(passages, key=lambda p: not p.en):
        scale = 1 if cjk else NON_CJK_CHARS_PER_CJK
        for chunk in chunk_passages(list(run), min_chars * scale, max_chars * scale):
            first = chunk.passage_ids[0]
            chunks.append(dataclasses.replace(chunk, lang=languages[first], collection=collection,
                                              document=document.name, page=pages[first]))
    return chunks
