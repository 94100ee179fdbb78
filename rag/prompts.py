"""Every text the product sends to a language model or shows as a fixed message, in one versioned place.

Bump PROMPT_VERSION when a prompt changes: answers in docs/evaluation.md name the version they used.
The system prompt never changes between questions, so llama.cpp reuses its evaluated state (KV cache).
"""
from __future__ import annotations

PROMPT_VERSION = 1

SYSTEM = (
    "You answer questions about the Green Silk Road Development Report (2023) using only the numbered "
    "facts in the user's message. Write at most two short sentences. Copy every number, unit and name "
    "exactly as the facts write them. Do not add anything the facts do not say. If the facts do not "
    "answer the question, write only: NOT_FOUND"
)
NOT_FOUND = "NOT_FOUND"

USER = "Facts:\n{facts}\n\nQuestion: {question}\nAnswer in {language_name}:"

RETRY = (
    "Your answer had a problem: {problem}. Answer again in {language_name}, using only the facts, "
    "copying numbers exactly."
)

LANGUAGE_NAMES = {
    "zh": "Chinese (简体中文)", "en": "English", "fr": "French", "es": "Spanish", "de": "German",
    "ru": "Russian", "ja": "Japanese", "ar": "Arabic",
}

# Shown when the report does not contain the answer ("The report does not say …").
REFUSALS = {
    "zh": "报告中没有关于这个问题的内容。以下是最接近的段落，供您参考。",
    "en": "The report does not say. The closest passages are listed below for you to check.",
    "fr": "Le rapport ne le dit pas. Les passages les plus proches sont listés ci-dessous.",
    "es": "El informe no lo dice. Debajo están los pasajes más cercanos para que los consulte.",
    "de": "Der Bericht sagt dazu nichts. Die nächstliegenden Abschnitte stehen unten.",
    "ru": "В докладе об этом не говорится. Ниже приведены наиболее близкие фрагменты.",
    "ja": "報告書にはこの質問への記載がありません。最も近い段落を以下に示します。",
    "ar": "لا يذكر التقرير ذلك. أقرب المقاطع مدرجة أدناه لتتحقق منها.",
}

# Label of an answer made of quoted report sentences (no language model, or its answer failed a check).
EXTRACTIVE_LABELS = {
    "zh": "报告原文：",
    "en": "From the report:",
    "fr": "Extrait du rapport :",
    "es": "Del informe:",
    "de": "Aus dem Bericht:",
    "ru": "Из доклада:",
    "ja": "報告書の原文：",
    "ar": "من التقرير:",
}


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


def localized(table: dict[str, str], language: str) -> str:
    return table.get(language, table["en"])
