"""rag.config: settings from the environment, typed by their defaults."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rag import config
from rag.errors import SettingError


def test_a_boolean_setting_reads_false_from_the_environment(monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class WithFlag(config.Settings):
        flag: bool = True

    monkeypatch.setattr(config, "Settings", WithFlag)
    for word, value in (("false", False), ("0", False), ("No", False), ("off", False), ("true", True),
                        ("1", True), ("YES", True)):
        monkeypatch.setenv("RAG_FLAG", word)
        assert config.load_settings().flag is value, word
    monkeypatch.setenv("RAG_FLAG", "maybe")
    with pytest.raises(SettingError, match="RAG_FLAG='maybe' is not a yes/no value"):
        config.load_settings()


def test_numbers_and_paths_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RAG_TOP_K", "7")
    monkeypatch.setenv("RAG_REFUSAL_THRESHOLD", "0.5")
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path))
    settings = config.load_settings()
    assert (settings.top_k, settings.refusal_threshold, settings.index_dir) == (7, 0.5, Path(tmp_path))
    assert config.load_settings(top_k=3).top_k == 3  # keyword overrides win
    monkeypatch.setenv("RAG_TOP_K", "seven")
    with pytest.raises(SettingError, match="RAG_TOP_K='seven' is not a int value"):
        config.load_settings()
