"""Words of a text, as retrieval, evidence selection and the answer checks count them.

Chinese: jieba words that hold a Han character or are a number; English (and French, Spanish, German
after accent folding): lower-case words and numbers without function words. One module, so that a
sentence and a question are always cut the same way wherever they are compared.
"""
from __future__ import annotations

import re
import unicodedata

EN_WORD_RE = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*")
# Chinese-side tokens worth matching: Han words and numbers. Latin words in a question are left to the
# English index; in the Chinese index they only match stray acronyms and add noise to the fusion.
ZH_TOKEN_RE = re.compile(r"[\u4e00-\u9fff]|^[0-9][0-9.,%]*$")
# Function words carry no topic; dropping them keeps BM25 from rewarding them.
EN_STOPWORDS = frozenset(
    "a an and are as at be by did do does for from has have how in is it its of on or that the this to was "
    "were what when where which who why with according report".split()
)
# Question words and particles: rare in the report (so BM25 would weigh them high) but never the answer.
ZH_QUESTION_WORDS = frozenset(
    "的 了 是 在 和 与 及 将 把 被 为 对 于 从 多少 什么 哪 哪些 哪个 哪一 哪一项 哪两个 何时 为什么 如何 怎样 怎么 "
    "百分之 百分之多少 几 吗 呢 得 那么 这么 怎么 怎样 为何 报告 称 指出 提出 根据 其 该 这 那 年 月 日 多 少 一项 哪里 谁 是否 共 可 能".split()
)


def tokenize_zh(text: str) -> list[str]:
    """Search-mode jieba tokens (a long name also yields its parts), for BM25 over the Chinese text."""
    import jieba

    return [t for t in jieba.lcut_for_search(text) if ZH_TOKEN_RE.search(t)]


def keywords_zh(text: str) -> list[str]:
    """Precise-mode jieba words (search mode's overlapping pieces would count a name three times)."""
    import jieba

    return [t for t in jieba.lcut(text) if t not in ZH_QUESTION_WORDS and ZH_TOKEN_RE.search(t)]


def fold_accents(text: str) -> str:
    """Bénin → Benin, réparer → reparer: French, Spanish and German questions then meet English words."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def tokenize_en(text: str) -> list[str]:
    return [t for t in EN_WORD_RE.findall(fold_accents(text).lower()) if t not in EN_STOPWORDS]
