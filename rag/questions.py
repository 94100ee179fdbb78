"""What counts as a question: cleaned of control characters, never empty, cut to a documented limit."""
from __future__ import annotations

import logging
import unicodedata

from rag.errors import QuestionError

log = logging.getLogger(__name__)


def clean_question(question: str, max_chars: int) -> str:
    """Drop control and format characters, collapse whitespace, cut to ``max_chars`` with a notice."""
    if not isinstance(question, str):
        raise QuestionError("the question must be text")
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in question)
    text = " ".join(text.split())
    if not text:
        raise QuestionError("the question is empty")
    if len(text) > max_chars:
        log.warning("the question was cut to its first %d characters", max_chars)
        text = text[:max_chars]
    return text
