"""Every text the product sends to a language model or shows as a fixed message, in one versioned place.

Bump PROMPT_VERSION when a prompt changes: answers in docs/evaluation.md name the version they used.
The system prompt never changes between questions, so llama.cpp reuses its evaluated state (KV cache).
"""
from __future__ import annotations

PROMPT_VERSION = 2

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

# Shown when the report does not contain the answer, naming what was asked ({asked}: a phrase of
# ASKED_PHRASES; {about}: ABOUT with the report's own names of what the question is about). The question's
# own words are never repeated: an attacker's "say that …" would come back in our voice.
REFUSALS = {
    "zh": "报告没有给出{asked}{about}。以下是最接近的段落，仅供参考。",
    "en": "The report does not give {asked}{about}. The closest passages are below, for context only.",
    "fr": "Le rapport ne donne pas {asked}{about}. Les passages les plus proches sont ci-dessous, pour contexte.",
    "es": "El informe no da {asked}{about}. Debajo están los pasajes más cercanos, solo como contexto.",
    "de": "Der Bericht nennt {asked}{about} nicht. Die nächstliegenden Abschnitte stehen unten, nur zur Einordnung.",
    "ru": "В докладе нет {asked}{about}. Ниже — наиболее близкие фрагменты, только для контекста.",
    "ja": "報告書には{asked}{about}の記載がありません。参考までに最も近い段落を以下に示します。",
    "ar": "لا يذكر التقرير {asked}{about}. أقرب المقاطع أدناه للسياق فقط.",
}
# The same when the user's own documents were searched too (rag/collections.py): not "the report" alone.
REFUSALS_DOCUMENTS = {
    "zh": "所检索的文档没有给出{asked}{about}。以下是最接近的段落，仅供参考。",
    "en": "The documents searched do not give {asked}{about}. The closest passages are below, for context only.",
    "fr": "Les documents consultés ne donnent pas {asked}{about}. Les passages les plus proches sont ci-dessous, "
          "pour contexte.",
    "es": "Los documentos consultados no dan {asked}{about}. Debajo están los pasajes más cercanos, solo como contexto.",
    "de": "Die durchsuchten Dokumente nennen {asked}{about} nicht. Die nächstliegenden Abschnitte stehen unten, "
          "nur zur Einordnung.",
    "ru": "В просмотренных документах нет {asked}{about}. Ниже — наиболее близкие фрагменты, только для контекста.",
    "ja": "検索した文書には{asked}{about}の記載がありません。参考までに最も近い段落を以下に示します。",
    "ar": "لا تذكر المستندات التي جرى البحث فيها {asked}{about}. أقرب المقاطع أدناه للسياق فقط.",
}
ABOUT = {"zh": "（关于{subject}）", "en": " for {subject}", "fr": " pour {subject}", "es": " sobre {subject}",
         "de": " zu {subject}", "ru": " о {subject}", "ja": "（{subject}について）", "ar": " عن {subject}"}
# What was asked, by the kind of value the question asks for (rag/asked.py); None: anything else.
ASKED_PHRASES = {
    "zh": {"count": "这个数量", "people": "这个人数", "money": "这个金额", "energy": "这个发电量", "power": "这个装机容量",
           "mass": "这个吨数", "length": "这个长度", "area": "这个面积", "percent": "这个比例", "date": "这个时间", None: "这个问题的答案"},
    "en": {"count": "the number asked for", "people": "the number of people asked for", "money": "the amount asked for",
           "energy": "the electricity figure asked for", "power": "the capacity asked for", "mass": "the tonnage asked for",
           "length": "the length asked for", "area": "the area asked for", "percent": "the percentage asked for",
           "date": "the date asked for", None: "an answer to this question"},
    "fr": {"count": "le nombre demandé", "people": "le nombre de personnes demandé", "money": "le montant demandé",
           "energy": "la production d'électricité demandée", "power": "la puissance demandée", "mass": "le tonnage demandé",
           "length": "la longueur demandée", "area": "la superficie demandée", "percent": "le pourcentage demandé",
           "date": "la date demandée", None: "de réponse à cette question"},
    "es": {"count": "el número que se pide", "people": "el número de personas que se pide", "money": "el importe que se pide",
           "energy": "la cifra de electricidad que se pide", "power": "la capacidad que se pide", "mass": "el tonelaje que se pide",
           "length": "la longitud que se pide", "area": "la superficie que se pide", "percent": "el porcentaje que se pide",
           "date": "la fecha que se pide", None: "una respuesta a esta pregunta"},
    "de": {"count": "die gefragte Zahl", "people": "die gefragte Personenzahl", "money": "den gefragten Betrag",
           "energy": "die gefragte Strommenge", "power": "die gefragte Leistung", "mass": "die gefragte Tonnage",
           "length": "die gefragte Länge", "area": "die gefragte Fläche", "percent": "den gefragten Anteil",
           "date": "das gefragte Datum", None: "eine Antwort auf diese Frage"},
    "ru": {"count": "запрошенного числа", "people": "запрошенного числа людей", "money": "запрошенной суммы",
           "energy": "запрошенной выработки", "power": "запрошенной мощности", "mass": "запрошенного тоннажа",
           "length": "запрошенной длины", "area": "запрошенной площади", "percent": "запрошенной доли",
           "date": "запрошенной даты", None: "ответа на этот вопрос"},
    "ja": {"count": "お尋ねの数", "people": "お尋ねの人数", "money": "お尋ねの金額", "energy": "お尋ねの発電量",
           "power": "お尋ねの容量", "mass": "お尋ねのトン数", "length": "お尋ねの長さ", "area": "お尋ねの面積",
           "percent": "お尋ねの割合", "date": "お尋ねの時期", None: "この質問への答え"},
    "ar": {"count": "العدد المطلوب", "people": "عدد الأشخاص المطلوب", "money": "المبلغ المطلوب", "energy": "كمية الكهرباء المطلوبة",
           "power": "القدرة المطلوبة", "mass": "الكمية بالطن المطلوبة", "length": "الطول المطلوب", "area": "المساحة المطلوبة",
           "percent": "النسبة المطلوبة", "date": "التاريخ المطلوب", None: "إجابة عن هذا السؤال"},
}
# Shown when the question is not about the report at all (no passages are offered).
OUT_OF_SCOPE = {
    "zh": "我只回答关于《绿色丝绸之路发展报告（2023）》的问题，这个问题不在报告范围内。",
    "en": "I only answer questions on the 2023 Green Silk Road Development Report; this question is outside it.",
    "fr": "Je réponds aux questions sur le Rapport 2023 sur le développement de la Route de la soie verte ; cette question en sort.",
    "es": "Respondo preguntas sobre el Informe de Desarrollo de la Ruta de la Seda Verde (2023); esta pregunta queda fuera.",
    "de": "Ich beantworte Fragen zum Green Silk Road Development Report (2023); diese Frage liegt außerhalb.",
    "ru": "Я отвечаю на вопросы о Докладе о развитии Зелёного Шёлкового пути (2023); этот вопрос вне его рамок.",
    "ja": "『グリーン・シルクロード発展報告（2023）』についての質問にお答えします。この質問は対象外です。",
    "ar": "أجيب عن الأسئلة المتعلقة بتقرير تنمية طريق الحرير الأخضر (2023)؛ هذا السؤال خارج نطاقه.",
}
# The same when the user's own documents were searched too (rag/collections.py).
OUT_OF_SCOPE_DOCUMENTS = {
    "zh": "我只回答关于《绿色丝绸之路发展报告（2023）》及其旁添加的文档的问题，这个问题不在这些文档范围内。",
    "en": "I only answer questions on the 2023 Green Silk Road Development Report and the documents added beside "
          "it; this question is outside them.",
    "fr": "Je réponds aux questions sur le Rapport 2023 sur le développement de la Route de la soie verte et les "
          "documents ajoutés ; cette question en sort.",
    "es": "Respondo preguntas sobre el Informe de Desarrollo de la Ruta de la Seda Verde (2023) y los documentos "
          "añadidos; esta pregunta queda fuera.",
    "de": "Ich beantworte Fragen zum Green Silk Road Development Report (2023) und zu den hinzugefügten "
          "Dokumenten; diese Frage liegt außerhalb.",
    "ru": "Я отвечаю на вопросы о Докладе о развитии Зелёного Шёлкового пути (2023) и добавленных документах; "
          "этот вопрос вне их рамок.",
    "ja": "『グリーン・シルクロード発展報告（2023）』と追加された文書についての質問にお答えします。この質問は対象外です。",
    "ar": "أجيب عن الأسئلة المتعلقة بتقرير تنمية طريق الحرير الأخضر (2023) والمستندات المضافة؛ هذا السؤال خارج نطاقها.",
}
# Leads a computed answer: the result is code's arithmetic on two cited figures of the report.
COMPUTED_LABELS = {
    "zh": "根据报告中的两个数字计算：", "en": "Computed from two figures in the report:",
    "fr": "Calculé à partir de deux chiffres du rapport :", "es": "Calculado a partir de dos cifras del informe:",
    "de": "Berechnet aus zwei Zahlen des Berichts:", "ru": "Рассчитано по двум цифрам доклада:",
    "ja": "報告書の二つの数値から計算：", "ar": "محسوب من رقمين في التقرير:",
}
# Leads a quoted answer when the asked value can be read from the quote: "Selon le rapport : 4,5 Mt."
VALUE_LEADS = {
    "zh": "据报告：{value}。", "en": "According to the report: {value}.", "fr": "Selon le rapport : {value}.",
    "es": "Según el informe: {value}.", "de": "Laut dem Bericht: {value}.", "ru": "Согласно докладу: {value}.",
    "ja": "報告書によれば：{value}。", "ar": "وفقًا للتقرير: {value}.",
}

# The same two when a quoted sentence comes from a user's own document (rag/collections.py), not the report.
DOCUMENT_VALUE_LEADS = {
    "zh": "据文档：{value}。", "en": "According to the documents: {value}.", "fr": "Selon les documents : {value}.",
    "es": "Según los documentos: {value}.", "de": "Laut den Dokumenten: {value}.", "ru": "Согласно документам: {value}.",
    "ja": "文書によれば：{value}。", "ar": "وفقًا للوثائق: {value}.",
}
DOCUMENT_LABELS = {
    "zh": "文档原文：", "en": "From the documents:", "fr": "Extrait des documents :", "es": "De los documentos:",
    "de": "Aus den Dokumenten:", "ru": "Из документов:", "ja": "文書の原文：", "ar": "من الوثائق:",
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


def build_messages(facts: list[str], question: str, language: str) -> list[dict]:
    """The chat the model answers: the fixed system prompt, then the numbered facts and the question."""
    numbered = "\n".join(f"[{i}] {fact}" for i, fact in enumerate(facts, start=1))
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": USER.format(facts=numbered, question=question,
                                                   language_name=language_name(language))}]


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


def localized(table: dict[str, str], language: str) -> str:
    return table.get(language, table["en"])
