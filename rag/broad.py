"""Which kind of question this is: a single fact, or one about the whole report (overview, list, compare).

``classify`` decides from the wording alone, in code, for the eight supported languages. The order of
the checks is the order of precedence: an explicit comparison ("compare A and B", "比较", "Vergleichen
Sie") wins over an overview cue ("summarise", "主要内容", "what does the report say about"), which wins
over a list cue ("which projects", "哪些", "quels", "какие", "挙げて"). Anything else is a single-fact
question and keeps the ordinary path.

The cues are deliberately narrow: a question that asks for a count, a date, one named thing ("which
plant is the largest", "哪两个国家", "哪一项") or an arithmetic combination of two facts ("how many
more", "比…多多少") must stay "single" (measured on the development sets, docs/evaluation.md).
"""
from __future__ import annotations

import re
import unicodedata

SINGLE, LIST, OVERVIEW, COMPARE = "single", "list", "overview", "compare"
KINDS = (SINGLE, LIST, OVERVIEW, COMPARE)

# Plural nouns of the things the report's catalogue holds, per language; "which <noun>" asks for a list.
_ITEM_NOUNS = {
    "en": r"projects|countries|events|platforms|coalitions|alliances|initiatives|documents|agreements|"
          r"institutions|funds|organi[sz]ations|partners|partnerships|memorand\w*|awards|honou?rs|programmes|"
          r"programs|policies|parks|plants|stations|railways|things|activities|examples|cases|steps|"
          r"mechanisms|forums|centres|centers|laboratories|cooperation projects|ministries|banks|standards",
    "fr": r"projets|pays|événements|evenements|plateformes|coalitions|alliances|initiatives|documents|accords|"
          r"institutions|fonds|organisations|partenaires|mémorandums|memorandums|prix|programmes|politiques|"
          r"parcs|centrales|centres|banques|normes|activités|activites|exemples",
    "es": r"proyectos|países|paises|eventos|acontecimientos|plataformas|coaliciones|alianzas|iniciativas|"
          r"documentos|acuerdos|instituciones|fondos|organizaciones|socios|memorandos|premios|programas|"
          r"políticas|politicas|parques|centrales|centros|bancos|normas|actividades|ejemplos",
    "de": r"projekte|länder|laender|ereignisse|plattformen|koalitionen|allianzen|initiativen|dokumente|"
          r"abkommen|vereinbarungen|institutionen|fonds|organisationen|partner|absichtserklärungen|"
          r"auszeichnungen|preise|programme|parks|kraftwerke|zentren|banken|standards|normen|beispiele",
    "ar": r"المشاريع|المشروعات|الدول|البلدان|الأحداث|الاحداث|المنصات|التحالفات|المبادرات|الوثائق|"
          r"الاتفاقيات|الاتفاقات|المؤسسات|الصناديق|المنظمات|الشركاء|مذكرات|الجوائز|البرامج|السياسات",
}

_COMPARE = [
    r"比较|对比|比較|異同|异同|有何不同|有什么不同|有何区别|有什么区别|的区别|各有(?:什么|哪些|何)|分别有(?:什么|何)|"
    r"哪一?个[^？?，,]{0,15}更",
    r"\bcompare\b|\bcomparing\b|\bcomparison\b|\bversus\b|\bvs\.?\s|\bcontrast\b|\bwhich of the two\b|"
    r"\bwhich\b[^?]*\b(?:larger|bigger|smaller|longer|shorter|higher|lower|greater|more|less|fewer)\b[^?]*\bor\b",
    r"\bcomparez\b|\bcomparer\b|\bcomparaison\b|\blequel des deux\b|\blaquelle des deux\b|"
    r"\b(?:lequel|laquelle|quel|quelle)\b[^?]*\bplus\b[^?]*\bou\b",
    r"\bcompare\b|\bcompara\b|\bcomparar\b|\bcomparacion\b|\bcual de los dos\b|\bcual de las dos\b|"
    r"\bcual\b[^?]*\bmas\b[^?]*\bo\b",
    r"\bvergleich\w*|\bwelche[rs]? der beiden\b|\bwelche[rs]?\b[^?]*\b(?:mehr|grosser|groesser|langer|hoher)\b[^?]*\boder\b",
    r"сравни\w*|сравнени\w*|какой из двух|какая из двух|какое из двух|\bкак(?:ой|ая|ое)\b[^?]*\bбольше\b[^?]*\bили\b",
    r"比べ|違い|どちらが|どちらの",
    r"قارن|مقارنة|أيهما|ايهما",
]
_OVERVIEW = [
    r"主要内容|主要讲|概括|概述|总结|综述|简述|简要介绍|介绍一下|讲了什么|说了什么|谈了什么|讲些什么|"
    r"怎么说|如何论述|哪些方面|提出了?哪些(?:方向|举措|建议|措施|主张|思路|任务)|有哪些(?:要点|观点|亮点)|要点|"
    r"(?:哪些|什么)内容|主要观点|核心观点",
    r"\bsummar(?:y|ise|ize|ising|izing)\b|\boverview\b|\boutline\b|\bmain (?:points|parts|content|contents|themes|"
    r"messages|sections|ideas|findings|topics)\b|\bkey (?:points|messages|takeaways|findings)\b|"
    r"\bwhat (?:does|do) (?:the report|it|this report|the section|the chapter)\b[^?]*\b(?:say|tell|state|write|cover)\b|"
    r"\bwhat is (?:the report|this report|the section|the chapter) about\b|\brecommend\w*|\btell me about\b|"
    r"\bdescribe (?:the|this) (?:section|chapter|part|report)\b|\bwhat does (?:the report|it) cover\b",
    r"\bresum\w*|\bapercu\b|\bpoints principaux\b|\bprincipaux points\b|\bque dit (?:le rapport|la section)\b|"
    r"\bcontenu principal\b|\bgrandes lignes\b|\brecommand\w*|\bde quoi (?:parle|traite)\b",
    r"\bresum\w*|\bpanorama\b|\bpuntos principales\b|\bque dice (?:el informe|la seccion)\b|\bcontenido principal\b|"
    r"\brecomienda\w*|\brecomendaciones\b|\bde que (?:trata|habla)\b",
    r"\bzusammenfass\w*|\bfassen sie\b[^?]*\bzusammen\b|\buberblick\b|\bhauptpunkte\b|\bwichtigsten punkte\b|"
    r"\bwas sagt der bericht\b|\bempfiehlt\b|\bempfehlungen\b|\bworum geht\b|\bwas steht\b",
    r"изложите|обзор|основные (?:тезисы|положения|моменты|идеи|мысли|выводы)|резюм\w*|что говорится|"
    r"что говорит доклад|что сказано|рекоменд\w*|о ч[её]м (?:доклад|раздел|глава)",
    r"要約|概要|まとめ|主な内容|要点|何を述べ|何と述べ|何が書かれ|提言",
    r"لخص|ملخص|تلخيص|نظرة عامة|النقاط الرئيسية|ماذا يقول التقرير|المحتوى الرئيسي|توصي|توصيات|يتحدث التقرير",
]
_LIST = [
    r"哪些|列举|列出|所有的|全部的?|都有什么|都有哪|发生了什么|发生了哪|有什么大事|哪几(?:个|项|家|件|份)",
    rf"\blist\b|\bname all\b|\bname the (?:{_ITEM_NOUNS['en']})\b|\ball the (?:{_ITEM_NOUNS['en']})\b|\b(?:which|what)\s+(?:\w+\s+){{0,2}}"
    rf"(?:{_ITEM_NOUNS['en']})\b|\bwhat happened\b|\bmention\w*\b[^?]*\b(?:in connection with|about|regarding|concerning)\b",
    rf"\b(?:quels|quelles)\b|\benumer\w*|\blistez\b|\b(?:tous|toutes) les (?:{_ITEM_NOUNS['fr']})\b|"
    r"\bque s'est-il passe\b",
    rf"\bque\s+(?:\w+\s+)?(?:{_ITEM_NOUNS['es']})\b|\bcuales\b|\benumer\w*|\b(?:todos|todas) (?:los|las) "
    rf"(?:{_ITEM_NOUNS['es']})\b|\bque (?:paso|ocurrio|sucedio)\b",
    rf"\bwelche\s+(?:\w+\s+){{0,2}}(?:{_ITEM_NOUNS['de']})\b|\bnennen sie alle\b|\bnenne alle\b|\bzahlen sie\b[^?]*\bauf\b|"
    rf"\blisten sie\b|\balle (?:{_ITEM_NOUNS['de']})\b|\bwas geschah\b|\bwas ist\b[^?]*\bpassiert\b",
    r"\bкакие\b|\bкаких\b|перечисл\w*|\bвсе (?:проекты|события|страны|инициативы|документы|соглашения)\b|"
    r"что произошло",
    r"挙げ|列挙|すべて|全て|一覧|どのような(?:プロジェクト|出来事|事業|取り組み|取組|国|文書|協定|機関|もの)|"
    r"どんな(?:プロジェクト|出来事|事業|取り組み|国|文書|協定|機関)|何が(?:起き|あっ)",
    rf"اذكر|(?:ما هي|ما|أي|اي)\s+(?:{_ITEM_NOUNS['ar']})|جميع|ماذا حدث",
]


def _compile(patterns: list[str]) -> re.Pattern:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


_RULES = ((COMPARE, _compile(_COMPARE)), (OVERVIEW, _compile(_OVERVIEW)), (LIST, _compile(_LIST)))


def fold(text: str) -> str:
    """Lower case without accents on Latin letters (é → e, ü → u); other scripts unchanged."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFKD", text.lower()):
        if "\u0300" <= ch <= "\u036f" and out and out[-1] < "\u0250":
            continue  # an accent on a Latin letter; Cyrillic й and Japanese dakuten stay
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def classify(question: str) -> str:
    """One of ``KINDS`` for the question's wording; "single" unless a broad cue is present."""
    text = fold(question)
    for kind, pattern in _RULES:
        if pattern.search(text):
            return kind
    return SINGLE
