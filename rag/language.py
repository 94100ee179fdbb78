"""Which language a question is in (langid ships its model inside the package: no download)."""
from __future__ import annotations

import functools
import re

SUPPORTED = ("zh", "en", "fr", "es", "de", "ru", "ja", "ar")
KANA_RE = re.compile(r"[\u3040-\u30ff]")
HAN_RE = re.compile(r"[\u4e00-\u9fff]")


@functools.lru_cache(maxsize=1)
def _identifier():
    from langid.langid import LanguageIdentifier, model

    return LanguageIdentifier.from_modelstring(model, norm_probs=True)


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's language; 'en' when there is nothing to go on.

    Kana decide Japanese before the statistical model, which confuses kanji-heavy Japanese with Chinese;
    Han characters with no kana are Chinese.
    """
    if KANA_RE.search(text):
        return "ja"
    if len(HAN_RE.findall(text)) >= max(2, len(text.strip()) // 4):
        return "zh"
    letters = re.sub(r"[\W\d_]+", " ", text).strip()
    if not letters:
        return "en"
    language, _ = _identifier().classify(text)
    return language
