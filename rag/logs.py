"""Logging shared by the CLI and the app."""
from __future__ import annotations

import logging

NOISY_LOGGERS = ("jieba", "bm25s", "sentence_transformers", "httpx", "urllib3", "faiss", "openai")


def quiet_libraries() -> None:
    """Keep library chatter (jieba's dictionary load, bm25s, HTTP clients) off the user's terminal."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
