"""Follow-up questions keep their subject: each turn of a conversation is resolved into a standalone question.

Done in code, in well under a millisecond per turn. A new question *depends* on the conversation when it
- opens with a conjunction or is an elliptic fragment: "et Ghana ?", "那第二个呢？", "and in 2022?", "why?";
- points back with a demonstrative or a pronoun: "that batch", "该项目", "这个园区", "它", "このモデル区";
  in the alphabetic languages a pronoun counts only when the question names nobody it could refer to
  ("In its outlook, what does China say…" is self-contained);
- asks for an attribute with no subject: no name of its own and few content words ("How long is the line?",
  "是哪一年投产的？", "¿Ha obtenido alguna certificación internacional?").
Otherwise it starts a new topic and is searched exactly as typed.

When it depends, the subject carried over is, in order: the previous turn's own subject when that turn
depended too; the heading of the case study ("专栏" item) its answer cited, the report's own name for it;
the Chinese or Japanese noun phrase before the predicate of the previous question; the glossary names and
quoted titles it contains; else the whole previous question, shown as "… (following: <that question>)".
A fragment is merged into the previous standalone question instead ("and in 2022?" replaces its year).
"""
from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Mapping, Sequence

from rag.glossary import QUOTES_RE, Term
from rag.language import detect_language

# langid takes 5–30 ms a call on a busy core; each question is seen again as the next turn's previous one.
language_of = functools.lru_cache(maxsize=1024)(detect_language)

# --------------------------------------------------------------------------------------------------
# The conversation


@dataclasses.dataclass(frozen=True)
class HistoryTurn:
    """One earlier turn: what was asked, how it was understood, what was answered and cited."""
    question: str
    standalone: str = ""
    answer: str = ""
    cited: tuple[str, ...] = ()  # chunk ids of the answer's citations (or of the top search results)
    subject: str = ""  # the subject it carried over, when it depended on the turn before

    @property
    def understood(self) -> str:
        return self.standalone or self.question


@dataclasses.dataclass(frozen=True)
class Resolution:
    question: str  # as asked
    standalone: str  # what is searched and answered
    depends: bool  # whether it needed the earlier turns
    subject: str = ""  # the subject carried over ("" when none)
    prior_chunks: tuple[str, ...] = ()  # the previous turn's cited chunks, a retrieval prior
    reason: str = ""  # which signal decided, for logs and the eval


# --------------------------------------------------------------------------------------------------
# Signals, per language. Lists are closed-class words (pronouns, demonstratives, conjunctions), not topics.

LATIN_WORD_RE = re.compile(r"[^\W\d_][\w'’\-–]*|\d[\d.,]*")
# Opening words that continue the previous turn ("And how many…?", "Et quelle…", "¿Y desde…?").
OPENERS = {
    "en": {"and", "also", "but", "so", "then"}, "fr": {"et", "puis", "mais", "alors"},
    "es": {"y", "e", "pero", "entonces"}, "de": {"und", "aber", "dann", "also"},
    "ru": {"а", "и", "но", "тогда"},
}
OPENER_PHRASES = ("what about", "how about", "et pour", "et en", "y en", "¿y", "und in", "а как", "а в")
ZH_OPENERS = ("那么", "还有", "另外")  # a bare 那 opens "那一年" (that year) too: left to the pointers
JA_OPENERS = ("では", "じゃあ", "それで", "それでは", "そして", "また", "そもそも")
AR_OPENER_RE = re.compile(r"^[«\"]?و(?:ما|ماذا|متى|كم|أين|لماذا|هل|كيف|من|أي)")
# Demonstratives and third-person pronouns that need an antecedent.
POINTERS = {
    "en": {"it", "its", "it's", "this", "that", "these", "those", "they", "their", "them", "there", "then",
           "he", "she", "his", "her", "such", "same", "former", "latter"},
    "fr": {"il", "elle", "ils", "elles", "son", "sa", "ses", "leur", "leurs", "ce", "cet", "cette", "ces",
           "celui", "celle", "ceux", "celles", "cela", "ça", "là", "y", "en", "lui", "même"},
    "es": {"su", "sus", "él", "ella", "ellos", "ellas", "este", "esta", "estos", "estas", "ese", "esa", "esos",
           "esas", "eso", "esto", "aquel", "aquella", "allí", "ahí", "allá", "entonces", "mismo", "misma"},
    "de": {"es", "sein", "seine", "seinen", "seinem", "seiner", "seines", "ihr", "ihre", "ihren", "ihrem", "ihrer",
           "dies", "diese", "dieser", "dieses", "diesem", "diesen", "jene", "jener", "jenes", "dort", "damals",
           "dabei", "dafür", "davon", "damit", "daran", "derselbe", "dieselbe", "dasselbe"},
    "ru": {"он", "она", "оно", "они", "его", "её", "ее", "их", "ему", "ей", "им", "этот", "эта", "это", "эти",
           "этого", "этой", "этом", "этих", "этим", "этому", "тот", "та", "те", "того", "той", "том", "там",
           "тогда", "такой", "такая", "такие"},
    "ar": {"هذا", "هذه", "ذلك", "تلك", "هؤلاء", "هناك", "هو", "هي", "هم", "نفسه", "نفسها", "حينها", "آنذاك"},
}
# Words of a Latin-script question that are never its subject (capitalised only at the start).
REPORT_WORDS_RE = re.compile(
    r"本报告|该报告|此报告|这份报告|报告中|the report|this report|ce rapport|le rapport|este informe|el informe|"
    r"dieser bericht|der bericht|этот доклад|в докладе|この報告書|本報告書|هذا التقرير|التقرير", re.I)
# Chinese pointers: 它 (it), 其 (its), 该 / 此 / 这 / 那 (this, that, the said) and 上述 (the above), minus the
# everyday words that merely contain those characters.
ZH_POINTER_RE = re.compile(r"它|其|该|此|这|那|上述|当时|同年|当年")
ZH_NOT_POINTER_RE = re.compile(r"其他|其它|其中|其余|尤其|极其|其实|及其|与其|应该|因此|此外|彼此|如此|由此|从此|"
                               r"对此|为此|据此|这样|那么|那样")
# Japanese ko-so-a words and 同 (the said …), plus 彼 / 彼女.
JA_POINTER_RE = re.compile(r"この|その|あの|これ|それ|あれ|ここ|そこ|あそこ|同(?:社|国|プロジェクト|事業|年|区|港|所)|彼")
# Elliptic endings: "那第二个呢？", "Ghanaは？".
ELLIPSIS_END_RE = re.compile(r"(?:呢|は|って)\s*[？?]?\s*$")
# Question words and function words left out when counting a Chinese/Japanese question's content.
ZH_FUNCTION_RE = re.compile(r"什么|多少|哪里|哪些|哪个|哪一|哪|几|为什么|为何|如何|怎样|怎么|何时|时候|是否|是|的|了|吗|呢|"
                            r"有|在|和|与|及|一共|总共|共|能|可以|会|对|把|被|从|到|给|又|还|都|也|就|请问|请")
CJK_CONTENT_RE = re.compile(r"[\u4e00-\u9fff\u30a0-\u30ff]")
# A question with fewer content characters (zh/ja) or words (others) than this and no name of its own asks
# for an attribute of something said before ("是哪一年投产的？" has 2; self-contained ones have 8 or more).
MIN_CJK_CONTENT = 7
MIN_WORDS_ALONE = 3  # "why?", "et Ghana ?", "and in 2022?": a fragment, whatever it names
# Zh predicate cues (jieba words): the subject of a Chinese question is the noun phrase before the first.
ZH_PREDICATES = frozenset("是 在 有 能 能够 可 可以 于 获得 获 为 被 将 曾 已 已经 什么 多少 哪 哪个 哪些 哪里 几 如何 怎样 怎么 "
                          "为何 为什么 何时 共 一共 累计 建 建在 建成 位于".split())
ZH_CLASSIFIERS = "个座次家条项批份种所处位届"  # 这座 / 那次 / 这个 …: the demonstrative's measure word
# "That year" and its kin point at the year the previous answer gave: (pattern, replacement).
THAT_YEAR = tuple((re.compile(pattern, re.I), replacement) for pattern, replacement in (
    (r"那一年|那年|当年|同年|その年", "{year}年"), (r"\bthat year\b|cette année-là|\b(?:ese|aquel) año\b", "{year}"),
    (r"\b(?:diesem|jenem) Jahr\b", "{year}"), (r"в том году|в тот год", "в {year} году"),
    (r"في ذلك العام", "في عام {year}")))
JA_SUBJECT_RE = re.compile(r"^(.+?)(?:では|には|が|は|を|で|に)")
QUOTED_RE = re.compile(r"《([^》]+)》|“([^”]+)”|«\s*([^»]+?)\s*»|„([^“”]+)[“”]|「([^」]+)」|『([^』]+)』|\"([^\"]+)\"")
YEAR_RE = re.compile(r"(?<!\d)(?:19|20)\d\d(?!\d)")
HEADING_NUMBER_RE = re.compile(r"^\s*(?:（[一二三四五六七八九十]+）|\(\d+\)|\d+\.)\s*")
# Latin names: capitalised words joined by short lowercase connectors ("Port of Mombasa", "Cuu An").
NAME_CONNECTORS = {"of", "de", "du", "des", "la", "le", "del", "der", "die", "das", "the", "and", "y", "et", "und",
                   "–", "-", "d'", "l'"}
FOLLOWING = {  # how a follow-up is shown when the previous question names nothing it can be reduced to
    "zh": "{question}（承接上一问：{previous}）", "ja": "{question}（前の質問：{previous}）",
    "en": "{question} (following: {previous})", "fr": "{question} (suite à : {previous})",
    "es": "{question} (a raíz de: {previous})", "de": "{question} (im Anschluss an: {previous})",
    "ru": "{question} (в продолжение: {previous})", "ar": "{question} (متابعة لـ: {previous})",
}
ABOUT = {  # how a carried subject is shown, in the asker's language
    "zh": "关于{subject}：{question}", "ja": "{subject}について：{question}", "en": "About {subject}: {question}",
    "fr": "À propos de {subject} : {question}", "es": "Sobre {subject}: {question}",
    "de": "Zu {subject}: {question}", "ru": "Тема: {subject}. {question}", "ar": "بخصوص {subject}: {question}",
}


# --------------------------------------------------------------------------------------------------
# The report's own names


@dataclasses.dataclass(frozen=True)
class ReportNames:
    """The names the report itself uses: glossary terms and case-study headings per chunk."""
    terms: tuple[Term, ...] = ()
    headings: Mapping[str, tuple[str, str]] = dataclasses.field(default_factory=dict)  # chunk id → (zh, en)
    capitalised: frozenset[str] = frozenset()  # lower-cased words the English edition capitalises mid-sentence

    @classmethod
    def from_chunks(cls, chunks: Iterable, terms: Sequence[Term] = ()) -> "ReportNames":
        headings, capitalised = {}, set()
        for chunk in chunks:
            if any(part.startswith("专栏") for part in chunk.section_zh[:-1]):  # a case study's own heading
                headings[chunk.id] = (HEADING_NUMBER_RE.sub("", chunk.section_zh[-1]),
                                      HEADING_NUMBER_RE.sub("", chunk.section_en[-1]) if chunk.section_en else "")
            capitalised.update(w.lower() for w in re.findall(r"(?<=[a-z,] )[A-Z][\w\-–]+", chunk.en))
        return cls(tuple(terms), headings, frozenset(capitalised))


# --------------------------------------------------------------------------------------------------
# Deciding


def _words(text: str) -> list[str]:
    return LATIN_WORD_RE.findall(text.lower())


def _is_cjk(language: str) -> bool:
    return language in ("zh", "ja")


def glossary_names(text: str, terms: Sequence[Term]) -> list[str]:
    """Glossary names the text contains, in the form it uses, longest first, none inside another."""
    plain, lower = QUOTES_RE.sub("", text), text.lower()
    found = [t.zh_plain for t in terms if len(t.zh_plain) >= 2 and t.zh_plain in plain]
    found += [text[lower.index(t.en.lower()):][:len(t.en)] for t in terms  # (`in` first: it is 100× faster)
              if len(t.en) >= 4 and t.en.lower() in lower
              and re.search(rf"(?<!\w){re.escape(t.en.lower())}(?!\w)", lower)]
    kept: list[str] = []
    for name in sorted(set(found), key=len, reverse=True):
        if not any(name in longer for longer in kept):
            kept.append(name)
    return kept


def quoted_names(text: str) -> list[str]:
    return [next(g for g in m.groups() if g).strip() for m in QUOTED_RE.finditer(text)]


def capitalised_names(text: str, language: str, names: ReportNames) -> list[str]:
    """Runs of capitalised words after the first word (German: only words the English edition capitalises)."""
    tokens = re.findall(r"[^\W\d_][\w'’\-–]*|\d+|[,;:?!¿¡()]", text)
    spans, current, pending = [], [], []
    for position, token in enumerate(tokens):
        capital = token[:1].isupper() and position > 0 and tokens[position - 1] not in "¿¡"
        if capital and language == "de":
            capital = token.lower() in names.capitalised
        if capital:
            current += pending + [token]
            pending = []
        elif current and token.lower() in NAME_CONNECTORS:
            pending.append(token)
        else:
            if current:
                spans.append(" ".join(current))
            current, pending = [], []
    if current:
        spans.append(" ".join(current))
    return [s for s in spans if s.lower() not in POINTERS.get(language, ())]


def own_names(text: str, language: str, names: ReportNames) -> list[str]:
    """What the question names by itself: report terms, quoted titles, proper names."""
    text = REPORT_WORDS_RE.sub(" ", text)
    found = glossary_names(text, names.terms) + quoted_names(text)
    if not _is_cjk(language) and language != "ar":
        found += capitalised_names(text, language, names)
    return found


def _content_size(text: str, language: str) -> int:
    if _is_cjk(language):
        return len(CJK_CONTENT_RE.findall(ZH_FUNCTION_RE.sub("", text)))
    return len(_words(text))


def _opener(text: str, language: str) -> bool:
    stripped = text.strip().lstrip("¿¡«\"“ ").lower()
    if language == "zh":
        return stripped.startswith(ZH_OPENERS)
    if language == "ja":
        return stripped.startswith(JA_OPENERS)
    if language == "ar":
        return bool(AR_OPENER_RE.match(stripped))
    words = _words(stripped)
    return bool(words) and (words[0] in OPENERS.get(language, OPENERS["en"])
                            or stripped.startswith(OPENER_PHRASES))


def _pointer(text: str, language: str) -> bool:
    text = REPORT_WORDS_RE.sub(" ", text)
    if language == "zh":
        return bool(ZH_POINTER_RE.search(ZH_NOT_POINTER_RE.sub("", text)))
    if language == "ja":
        return bool(JA_POINTER_RE.search(text))
    return any(w in POINTERS.get(language, POINTERS["en"]) for w in _words(text))


def decide(question: str, language: str, names: ReportNames) -> tuple[bool, str]:
    """(depends on the conversation, the signal that decided)."""
    size = _content_size(question, language)
    if _opener(question, language) or (size <= MIN_WORDS_ALONE and not _is_cjk(language)):
        return True, "fragment"
    if _is_cjk(language) and (ELLIPSIS_END_RE.search(question) and size <= MIN_CJK_CONTENT):
        return True, "fragment"
    if _is_cjk(language) and _pointer(question, language):
        return True, "pointer"
    named = own_names(question, language, names)
    if named:
        return False, "names " + "; ".join(named[:3])
    if _pointer(question, language):
        return True, "pointer"
    if _is_cjk(language) and size >= MIN_CJK_CONTENT:
        return False, "self-contained"
    if language == "ar" and size > 2 * MIN_WORDS_ALONE:
        return False, "self-contained"
    return True, "no subject"


# --------------------------------------------------------------------------------------------------
# Carrying the subject


def _cjk_subject(text: str, language: str) -> str:
    """The noun phrase a Chinese or Japanese question opens with: "阿根廷胡胡伊省光伏电站（在南美有…）"."""
    text = text.strip()
    if language == "ja":
        match = JA_SUBJECT_RE.match(text)
        return match.group(1).strip("、， ") if match else ""
    import jieba

    words, position = jieba.lcut(text), 0
    for index, word in enumerate(words):
        if word in ZH_PREDICATES or word in "？?，,":
            # "比亚迪在欧洲的第一座工厂": 在 followed by 的 before the next predicate modifies the noun phrase
            ahead = next((i for i in range(index + 1, len(words)) if words[i] in ZH_PREDICATES), len(words))
            if not (word == "在" and "的" in words[index + 1:ahead]):
                break
        position += len(word)
    return text[:position].strip("，、 ") if position >= 2 else ""


def carried_subject(last: HistoryTurn, language: str, names: ReportNames) -> tuple[str, bool]:
    """(the subject, whether it is a name) carried over from the previous turn.

    A turn that itself depended passes its own subject on. Not a name: the previous question itself, when
    it names nothing the report does ("Which Kazakh oil refinery…?"); a follow-up then reads as
    "… (following: <that question>)".
    """
    if last.subject:
        return last.subject, not last.understood.rstrip().endswith((last.subject + ")", last.subject + "）"))
    heading = next((names.headings[c] for c in last.cited if c in names.headings), None)
    if heading:
        return (heading[0] if _is_cjk(language) or not heading[1] else heading[1]), True
    previous_language = language_of(last.question)
    report_terms = glossary_names(last.question, names.terms) + quoted_names(last.question)
    if _is_cjk(previous_language):
        phrase = _cjk_subject(last.question, previous_language)
        plain = QUOTES_RE.sub("", phrase)
        if phrase and (not report_terms or any(QUOTES_RE.sub("", t) in plain for t in report_terms)):
            return phrase, True
    if report_terms:
        return report_terms[0], True
    return _bare(last.question), False


def _bare(question: str) -> str:
    return question.strip().rstrip("？?!！؟ ").lstrip("¿¡ ")


def _core(fragment: str, language: str) -> str:
    """A fragment without its opener and its question mark: "et Ghana ?" → "Ghana"."""
    text = fragment.strip().rstrip("？?!！ ").lstrip("¿¡ ")
    text = re.sub(r"(?:呢|は|って)$", "", text)
    for opener in sorted(ZH_OPENERS + JA_OPENERS, key=len, reverse=True):
        if text.startswith(opener):
            return text[len(opener):].strip("，、, ")
    words = text.split()
    phrases = [p for p in OPENER_PHRASES if text.lower().startswith(p) and " " in p]
    if phrases:
        return text[len(phrases[0]):].strip(" ,")
    if words and words[0].lower() in OPENERS.get(language, OPENERS["en"]):
        return " ".join(words[1:]).strip(" ,")
    return text


def merge_fragment(fragment: str, previous: str, subject: str, language: str, names: ReportNames) -> str:
    """The previous question re-asked with what the fragment changes ("and in 2022?" → its year replaced)."""
    core = _core(fragment, language)
    years = YEAR_RE.findall(core)
    if years and YEAR_RE.search(previous):
        return YEAR_RE.sub(years[0], previous, count=1)
    new_names = own_names(core, language, names) if core else []
    old_names = [subject] + own_names(previous, language_of(previous), names)
    replaced = next((name for name in old_names if name and name in previous), None)
    if new_names and replaced:
        return previous.replace(replaced, new_names[0], 1)
    end = len(previous.rstrip("？?!！ ").rstrip())
    joiner = "，" if _is_cjk(language) else ", "
    return f"{previous[:end]}{joiner}{core}{previous[end:]}" if core else previous


def substitute(question: str, subject: str, is_name: bool, language: str) -> str:
    """The question with its one pronoun replaced by the subject, or prefixed with it ("About X: …"), or,
    when the subject is a whole earlier question, followed by it."""
    if not is_name:
        return FOLLOWING.get(language, FOLLOWING["en"]).format(question=question, previous=subject)
    if language == "zh" and question.count("它") == 1 and "它们" not in question:
        return question.replace("它", subject)
    if language == "zh" and "它" not in question and (span := _zh_pointer_phrase(question)):
        return question.replace(span, subject, 1)
    if language == "en" and len(re.findall(r"\bit\b", question)) == 1 and not re.search(r"\bits\b", question):
        return re.sub(r"\bit\b", subject, question)
    stripped = _core(question, language) if _opener(question, language) else question
    stripped = stripped[:1].upper() + stripped[1:] if stripped and not _is_cjk(language) else stripped
    if not stripped.rstrip().endswith(("?", "？", "؟")):
        stripped += "？" if _is_cjk(language) else " ?" if language == "fr" else "?"
    return ABOUT.get(language, ABOUT["en"]).format(subject=subject, question=stripped)


def _zh_pointer_phrase(question: str) -> str:
    """The one demonstrative noun phrase of a Chinese question: "这座工厂", "该项目", "那次论坛" ('' if none)."""
    import jieba

    words = jieba.lcut(question)
    found = [i for i, w in enumerate(words) if w[0] in "这那该此" and not ZH_NOT_POINTER_RE.match(w)
             and len(w) <= 2 and (len(w) == 1 or w[1] in ZH_CLASSIFIERS)]
    if len(found) != 1:
        return ""
    index = end = found[0]
    if len(words[index]) == 1 and words[index + 1:index + 2] and words[index + 1] in ZH_CLASSIFIERS:
        end += 1  # 这 | 条 | 铁路
    noun = words[end + 1] if end + 1 < len(words) else ""
    if not CJK_CONTENT_RE.match(noun) or noun in ZH_PREDICATES or noun[0] in "的一二三四五六七八九十第":
        return ""
    return "".join(words[index:end + 2])


def that_year(question: str, last: HistoryTurn) -> str:
    """"那一年它发了多少电？" → "2021年它发了多少电？" when the previous answer gave a year its question did not."""
    year = answered_year(last)
    for pattern, replacement in THAT_YEAR if year else ():
        question = pattern.sub(replacement.format(year=year), question)
    return question


def answered_year(last: HistoryTurn) -> str:
    """The year the previous answer gave: of the years its question did not name, the one in the clause
    that shares most of the question's words ("2020 年 9 月并网，2021 年 4 月进入运营期" asked about 运营期)."""
    asked = _bigrams(last.understood)
    candidates = [(len(asked & _bigrams(clause)), -position, year)
                  for position, clause in enumerate(re.split(r"[，。；;,!?！？]|\.\s", last.answer))
                  for year in YEAR_RE.findall(clause) if year not in last.understood]
    return max(candidates)[2] if candidates else ""


def _bigrams(text: str) -> set[str]:
    text = re.sub(r"\W+", "", text.lower())
    return {text[i:i + 2] for i in range(len(text) - 1)}


def resolve(question: str, history: Sequence[HistoryTurn], names: ReportNames | None = None,
            language: str | None = None) -> Resolution:
    """The standalone form of ``question`` given the earlier turns (oldest first)."""
    question = question.strip()
    if not history:
        return Resolution(question, question, False, reason="first turn")
    names = names or ReportNames()
    language = language or language_of(question)
    last = history[-1]
    depends, reason = decide(question, language, names)
    if not depends:
        return Resolution(question, question, False, prior_chunks=last.cited, reason=reason)
    subject, is_name = carried_subject(last, language, names)
    dated = that_year(question, last)
    if reason == "fragment" and (_content_size(question, language) <= (MIN_CJK_CONTENT if _is_cjk(language)
                                                                       else MIN_WORDS_ALONE + 1)):
        standalone = merge_fragment(dated, last.understood, subject, language, names)
    else:
        standalone = substitute(dated, subject, is_name, language)
    return Resolution(question, standalone, True, subject, last.cited, reason)


@functools.lru_cache(maxsize=4)
def names_for(retriever) -> ReportNames:
    """The report's names for a loaded retriever (built once per retriever)."""
    return ReportNames.from_chunks(retriever.chunks, retriever.glossary)


# --------------------------------------------------------------------------------------------------
# Conversation files: {"id", "turns": [{"question"}, …]} lines, for batches and the eval

HISTORY_TURNS = 6  # turns a conversation keeps: resolving reads the last one; the rest are for display
GROUPS = {True: "follow-up", False: "switch"}  # eval groups of a last turn, by its ``needs_context``


def conversation_row(row: dict) -> dict:
    """A conversation line read as its last turn (question, gold fields), the turns kept beside it."""
    turns = row.get("turns")
    if not isinstance(turns, list) or not turns or not all(isinstance(t, dict) for t in turns):
        return row
    return {**row, **turns[-1], "turns": turns}


def earlier_questions(row: dict) -> list[str]:
    """The questions before the last turn of a conversation row ([] for a single question)."""
    turns = row.get("turns") if isinstance(row.get("turns"), list) else []
    questions = [t.get("question") for t in turns[:-1] if isinstance(t, dict)]
    if not all(isinstance(q, str) and q.strip() for q in questions):
        raise ValueError('every turn needs a "question" string')
    return questions


def conversation_groups(row: dict) -> set[str]:
    return {GROUPS[row["needs_context"]]} if isinstance(row.get("needs_context"), bool) else set()


def search_history(retriever, questions: Sequence[str], mode: str = "hybrid") -> list[HistoryTurn]:
    """Earlier turns searched in order, each resolved against the ones before; its top result stands in
    for the chunk an answer would have cited."""
    history: list[HistoryTurn] = []
    for question in questions:
        names = names_for(retriever)
        resolution = resolve(question, history, names)
        hits = retriever.search(resolution.standalone, 1, mode=mode).hits
        history.append(HistoryTurn(question, resolution.standalone, "", tuple(h.chunk.id for h in hits[:1]),
                                   resolution.subject))
    return history


def ask_history(pipeline, questions: Sequence[str], **options) -> list[HistoryTurn]:
    """Earlier turns answered in order, each with the ones before as its history."""
    history: list[HistoryTurn] = []
    for question in questions:
        answer = pipeline.ask(question, history=history, **options)
        history.append(history_turn(answer))
    return history


def history_turn(answer) -> HistoryTurn:
    """The HistoryTurn of a pipeline Answer: what the turns after it resolve against."""
    return HistoryTurn(answer.question, answer.standalone or answer.question, answer.answer,
                       tuple(c.chunk_id for c in answer.citations), answer.subject)


class ConversationAsker:
    """``Pipeline.ask`` for the last turns of conversation rows, in file order: each conversation's earlier
    turns are answered first and become the last turn's history. Single questions are asked as they are."""

    def __init__(self, pipeline, rows: Sequence[dict]):
        self.pipeline, self.settings = pipeline, pipeline.settings
        self._earlier: dict[str, list[list[str]]] = {}
        for row in rows:
            self._earlier.setdefault(row["question"], []).append(earlier_questions(row))

    def ask(self, question: str, **options):
        queue = self._earlier.get(question) or [[]]
        history = ask_history(self.pipeline, queue.pop(0) if len(queue) > 1 else queue[0], **options)
        return self.pipeline.ask(question, history=history, **options)


def add_conversation_groups(report: dict, rows: Sequence[dict], metrics) -> None:
    """Add the follow-up / switch groups to an answer report, from its rows (matched by id)."""
    kinds = {row.get("id"): conversation_groups(row) for row in rows}
    for group in GROUPS.values():
        members = [r for r in report["rows"] if group in kinds.get(r["id"], ())]
        if members:
            report["groups"][group] = metrics(members)
