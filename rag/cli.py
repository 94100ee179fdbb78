"""The ``rag`` command line: build, search, eval. JSON goes to stdout alone; progress and logs to stderr."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from rag import config
from rag.documents_cli import add_document_commands, with_collections
from rag.errors import KNOWN_ERRORS, UserError, plain_error
from rag.logs import quiet_libraries
from rag.questions import clean_question

log = logging.getLogger("rag")


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def read_batch(path: Path) -> Iterator[tuple[int, dict | None, str | None]]:
    """(line number, object or None, error or None) for each non-empty line of a JSONL file.

    Lines are decoded one by one, so a line of invalid UTF-8 or JSON costs only that line.
    """
    try:
        raw_lines = path.read_bytes().splitlines()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8-sig" if number == 1 else "utf-8"))  # tolerate a BOM
        except UnicodeDecodeError:
            yield number, None, "line is not valid UTF-8"
            continue
        except json.JSONDecodeError as error:
            yield number, None, f"line is not valid JSON ({error.msg})"
            continue
        if isinstance(row, dict) and "turns" in row and "question" not in row:
            if not _valid_turns(row["turns"]):
                yield number, row, '"turns" must be a list of objects, each with a "question" string'
                continue
        elif not isinstance(row, dict) or not isinstance(row.get("question"), str):
            yield number, row if isinstance(row, dict) else None, 'line needs a "question" string field'
            continue
        yield number, row, None


def _valid_turns(turns) -> bool:
    return (isinstance(turns, list) and bool(turns)
            and all(isinstance(t, dict) and isinstance(t.get("question"), str) for t in turns))


def run_batch(path: Path, process) -> int:
    """One JSON line out per line in: the input's fields plus ``process(row)``'s, or, for a line that
    cannot be read or processed, ``{"id", "line", "error"}`` — and the run goes on."""
    for number, row, error in read_batch(path):
        if error is None:
            try:
                _print_json({**row, **process(row)})
                continue
            except Exception as problem:  # noqa: BLE001 - one bad line must not end a batch
                log.debug("line %d failed", number, exc_info=True)
                error = plain_error(problem)
        _print_json({"id": (row or {}).get("id"), "line": number, "error": error})
    return 0


def search_row(retriever, question: str, k: int) -> dict:
    from rag.retrieval import search_row as row  # shared with `rag serve`

    return row(retriever, question, k)


def search_conversation_row(retriever, row: dict, k: int) -> dict:
    """A conversation line searched: its last turn's results, resolved against the turns before."""
    from rag import followup

    turns = [clean_question(t["question"], retriever.settings.max_question_chars) for t in row["turns"]]
    history = followup.search_history(retriever, turns[:-1])
    resolution = followup.resolve(turns[-1], history, followup.names_for(retriever))
    return {**search_row(retriever, resolution.standalone, k), "question": turns[-1],
            "standalone": resolution.standalone,
            "turns": [{"question": h.question, "standalone": h.understood} for h in history]}


def ask_conversation_row(pipeline, row: dict, options: dict) -> dict:
    """A conversation line answered: its last turn's answer, each turn answered with the ones before."""
    from rag import followup

    history = followup.ask_history(pipeline, [t["question"] for t in row["turns"][:-1]], **options)
    answer = pipeline.ask(row["turns"][-1]["question"], history=history, **options)
    return {**answer_row(answer),
            "turns": [{"question": h.question, "standalone": h.understood, "answer": h.answer} for h in history]}


def cmd_build(args, settings: config.Settings) -> int:
    from rag.index import add_structure, build_index, has_structure, load_index, StaleIndex

    if not args.force:
        try:
            manifest = load_index(settings).manifest
            if not has_structure(manifest):
                manifest = add_structure(settings)
                log.info("added the report's structure to the index")
            log.info("index is up to date (%s chunks, built %s); use --force to rebuild",
                     manifest["counts"]["chunks"], manifest["built_at"])
            return 0
        except StaleIndex as reason:
            log.info("%s — building", reason)
    manifest = build_index(settings, progress=True)
    log.info("built %d chunks, %d vectors (%s, %s index) in %s", manifest["counts"]["chunks"],
             manifest["counts"]["vectors"], "+".join(manifest["languages"]), manifest["index_type"],
             settings.index_dir)
    return 0


def cmd_search(args, settings: config.Settings) -> int:
    from rag.retrieval import Retriever

    if bool(args.question) == bool(args.batch):
        raise UserError("give either a QUESTION or --batch FILE")
    retriever = Retriever(settings)
    if args.batch:
        return run_batch(Path(args.batch), lambda row: search_conversation_row(retriever, row, args.k)
                         if "turns" in row and "question" not in row else search_row(
            retriever, clean_question(row["question"], settings.max_question_chars), args.k))
    row = search_row(retriever, clean_question(args.question, settings.max_question_chars), args.k)
    if args.json:
        _print_json(row)
        return 0
    for rank, hit in enumerate(row["results"], start=1):
        print(f"[{rank}] {hit['chunk_id']}  score={hit['score']:.4f}  {hit['section']}")
        print(f"    {hit['zh'][:160]}")
        if hit["en"]:
            print(f"    {hit['en'][:200]}")
    return 0


def cmd_eval(args, settings: config.Settings) -> int:
    from rag import evaluation
    from rag.retrieval import Retriever

    default = config.DEV_QA_FILE.parent / "broad_dev.jsonl" if args.broad else config.DEV_QA_FILE
    path = Path(args.qa) if args.qa else default
    if not path.exists():
        raise UserError(f"no question file at {path}")
    questions = evaluation.read_questions(path)
    if args.broad or (questions and all("items" in q and "kind" in q for q in questions)):
        from rag.answer import Pipeline

        report = evaluation.evaluate_broad(Pipeline(settings, progress=True), questions, args.generator,
                                           progress=not args.json)
        if args.json:
            _print_json(report)
        else:
            print(evaluation.format_broad_report(report))
        return 0
    if args.refusals:
        from rag.answer import Pipeline

        pipeline = Pipeline(settings, progress=True)
        curve = evaluation.refusal_curve(pipeline, questions)
        if args.json:
            _print_json(curve)
        else:
            print(evaluation.format_refusal_curve(curve, settings.refusal_threshold))
        return 0
    if args.answers:
        from rag.answer import Pipeline

        from rag import followup

        pipeline = Pipeline(settings, progress=True)
        asker = followup.ConversationAsker(pipeline, questions) if not args.no_history else pipeline
        report = evaluation.evaluate_answers(asker, questions, args.generator, progress=not args.json)
        followup.add_conversation_groups(report, questions, evaluation._answer_metrics)
        if args.json:
            _print_json(report)
        else:
            print(evaluation.format_answer_report(report))
        return 0
    configs = evaluation.comparison_configs(settings) if args.compare else [("hybrid", settings, "hybrid")]
    reports, retrievers = [], {}
    for name, run_settings, mode in configs:
        if run_settings not in retrievers:
            retrievers[run_settings] = Retriever(run_settings)
        reports.append(evaluation.evaluate_retrieval(retrievers[run_settings], questions, args.k, mode, name,
                                                     history=not args.no_history))
    if args.json:
        _print_json([r.to_json() for r in reports] if args.compare else reports[0].to_json())
    elif args.compare:
        print(evaluation.format_comparison(reports))
    else:
        print(evaluation.format_report(reports[0]))
    return 0


def cmd_show(args, settings: config.Settings) -> int:
    from rag import reader

    if not args.id:
        for entry in reader.table_of_contents(settings.zh_file, settings.en_file):
            print(f"{'  ' * (entry.level - 1)}{entry.id}  {entry.zh}  |  {entry.en}")
        return 0
    try:
        section, asked = reader.section_for(args.id, settings.zh_file, settings.en_file)
    except reader.UnknownId as error:
        raise UserError(str(error)) from None
    print(reader.format_section(section, None if args.section else asked))
    return 0


def answer_row(answer) -> dict:
    from rag.answer import answer_row as row  # shared with `rag serve`

    return row(answer)


def cmd_ask(args, settings: config.Settings) -> int:
    from rag.answer import Pipeline

    if bool(args.question) == bool(args.batch):
        raise UserError("give either a QUESTION or --batch FILE")
    pipeline = Pipeline(settings, progress=True)
    options = {"generator": args.generator, "k": args.k, "language": args.language}
    if args.batch:
        return run_batch(Path(args.batch), lambda row: ask_conversation_row(pipeline, row, options)
                         if "turns" in row and "question" not in row
                         else answer_row(pipeline.ask(row["question"], **options)))
    if args.json:
        _print_json(answer_row(pipeline.ask(args.question, **options)))
        return 0
    for kind, payload in pipeline.stream(args.question, **options):
        if kind == "evidence" and payload:
            print("Evidence: " + " ".join(f"[{c.marker}] {c.sentence_zh}" for c in payload), file=sys.stderr)
        elif kind in ("token", "reset"):
            print_token(kind, payload)
        elif kind == "answer":
            print_answer(payload)
    return 0


def cmd_serve(args, settings: config.Settings) -> int:
    from rag.server import serve

    return serve(settings, args.host, args.port)


CHAT_HELP = "Ask about the report in any language. /new starts over, /sources shows the cited passages, Ctrl-D quits."


def cmd_chat(args, settings: config.Settings) -> int:
    """An interactive conversation on stdin: follow-ups keep their subject (rag/followup.py)."""
    from rag import followup
    from rag.answer import Pipeline

    pipeline = Pipeline(settings, progress=True)
    options = {"generator": args.generator, "k": args.k, "language": args.language}
    history: list = []
    answer = None
    print(CHAT_HELP, file=sys.stderr)
    while True:
        try:
            line = input("> " if sys.stdin.isatty() else "").strip()
        except EOFError:
            print(file=sys.stderr)
            return 0
        if line == "/new":
            history, answer = [], None
            print("(new conversation)")
        elif line == "/sources":
            print_sources(answer)
        elif line.startswith("/"):
            print(f"unknown command {line.split()[0]}; {CHAT_HELP}")
        elif line:
            try:
                answer = chat_turn(pipeline, line, history, options)
            except KNOWN_ERRORS as error:
                print(f"rag: {plain_error(error)}", file=sys.stderr)
                continue
            history = [*history, followup.history_turn(answer)][-followup.HISTORY_TURNS:]


def chat_turn(pipeline, question: str, history: list, options: dict):
    """One turn: "Understood as" for a follow-up, the answer streamed on stderr, then printed with its citations."""
    answer = None
    for kind, payload in pipeline.stream(question, history=history, **options):
        if kind == "standalone" and payload != " ".join(question.split()):
            print(f"Understood as: {payload}")
        elif kind in ("token", "reset"):
            print_token(kind, payload)
        elif kind == "answer":
            answer = payload
    print_answer(answer)
    sys.stdout.flush()
    return answer


def print_sources(answer) -> None:
    """The passages the last answer cited (or, for a refusal, the closest ones), in full."""
    from rag.passages import from_citation

    passages = ([from_citation(c) for c in answer.citations] or answer.closest) if answer else []
    if not passages:
        print("(no sources yet: ask a question first)")
    for passage in passages:
        marker = f"[{passage.number}] " if passage.supported is not None else ""
        print(f"{marker}{passage.section} ({passage.chunk_id})")
        print(f"    {passage.zh}")
        if passage.en:
            print(f"    {passage.en}")


def print_token(kind: str, payload) -> None:
    """The model's answer as it is written, on stderr; a failed first attempt is marked before the retry."""
    if kind == "reset":
        print("\n(the answer failed a check; writing it again)", file=sys.stderr)
    else:
        print(payload, end="", flush=True, file=sys.stderr)


OUTCOME_LABELS = {"answered": "answered, claims checked", "computed": "computed from the report's figures",
                  "quoted": "quoted from the report", "not_in_report": "not in the report",
                  "out_of_scope": "outside the report"}


def print_answer(answer) -> None:
    print(file=sys.stderr)
    print(answer.answer)
    print(f"  [{OUTCOME_LABELS.get(answer.outcome, answer.outcome)}]")
    for citation in answer.citations:
        badge = "verified" if citation.supported else "not supported"
        print(f"  [{citation.marker}] {citation.section} ({citation.chunk_id}, {badge})")
        print(f"      {citation.sentence_zh}")
        if citation.sentence_en:
            print(f"      {citation.sentence_en}")
    for passage in answer.closest:
        print(f"  context (not a source of the answer): {passage.chunk_id} {passage.section}")
    if answer.note:
        print(f"  note: {answer.note}")
    print(f"  ({answer.generator}, {answer.timings.get('total_ms', 0):.0f} ms)")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def add_bench_command(commands) -> None:
    """`rag bench` and its sections (rag/bench/)."""
    bench = commands.add_parser("bench", help="measure speed and memory; writes docs/benchmarks.md and plots")
    bench.add_argument("--quick", action="store_true", help="tiny sizes and no language model (for the tests)")
    bench.add_argument("--scale", type=positive_int, nargs="+", default=[], metavar="N",
                       help="corpus sizes added to 10000 and 100000, e.g. --scale 1000000 (slow)")
    bench.add_argument("--generators", action="store_true",
                       help="also transformers' GGUF loader in fp32 / bfloat16 / torch.compile (slow)")
    bench.add_argument("--concurrency", action="store_true",
                       help="also run the concurrency test with the local generator (slow)")
    bench.add_argument("--stores", type=positive_int, nargs="?", const=100_000, metavar="N",
                       help="only section 6: FAISS flat / HNSW and Milvus (milvus-lite) at N vectors (default 100000)")
    bench.add_argument("--serve", action="store_true",
                       help="only section 5: `rag serve` over HTTP at 1/4/16 clients, extractive and local (slow)")
    bench.add_argument("--documents", choices=("parsers", "add"),
                       help="only the measurements of docs/documents.md: the PDF parsers compared, or the time to "
                            "add 10 and 100 pages")
    bench.add_argument("--questions", type=positive_int, help="only the first N development questions")
    bench.add_argument("--generator", help="generator of the per-question stages (default: the configured one)")
    bench.add_argument("--out", default=str(config.PROJECT_ROOT / "docs" / "benchmarks.md"),
                       help="markdown report; plots go next to it (default docs/benchmarks.md)")
    bench.add_argument("--json", metavar="FILE", help="also write every measurement as JSON")
    bench.set_defaults(handler=cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="build the FAISS index of the corpus (embeddings/)")
    build.add_argument("--force", action="store_true", help="rebuild even when the index is up to date")
    build.set_defaults(handler=cmd_build)

    search = commands.add_parser("search", help="find the passages that answer a question")
    search.add_argument("question", nargs="?", help="the question, in any language")
    search.add_argument("--batch", metavar="FILE.jsonl", help='one JSON object per line with a "question"')
    search.add_argument("-k", type=positive_int, default=5, help="number of results (default 5)")
    search.add_argument("--json", action="store_true", help="print JSON only")
    search.set_defaults(handler=cmd_search)

    ask = commands.add_parser("ask", help="answer a question with verified citations")
    ask.add_argument("question", nargs="?", help="the question, in any language")
    ask.add_argument("--batch", metavar="FILE.jsonl", help='one JSON object per line with a "question"')
    ask.add_argument("--generator", help='"local" (default), "extractive", "hf:<model>", "openai:<url>|<model>"')
    ask.add_argument("-k", type=positive_int, default=None, help="passages searched (default 5)")
    ask.add_argument("--language", help="answer language (default: the question's)")
    ask.add_argument("--json", action="store_true", help="print JSON only")
    ask.set_defaults(handler=cmd_ask)

    chat = commands.add_parser("chat", help="an interactive conversation: follow-up questions keep their subject")
    chat.add_argument("--generator", help='"local" (default), "extractive", "hf:<model>", "openai:<url>|<model>"')
    chat.add_argument("-k", type=positive_int, default=None, help="passages searched (default 5)")
    chat.add_argument("--language", help="answer language (default: the question's)")
    chat.set_defaults(handler=cmd_chat)

    serve = commands.add_parser("serve", help="an OpenAI-compatible HTTP API with citations (rag/server.py)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=positive_int, default=8000, help="port (default 8000)")
    serve.set_defaults(handler=cmd_serve)

    evaluate = commands.add_parser("eval", help="measure retrieval on questions with evidence sentences")
    evaluate.add_argument("--qa", help="JSONL with question, lang, evidence (default: the development set)")
    evaluate.add_argument("--broad", action="store_true",
                          help="overview / list / compare answers on broad_dev.jsonl (or --qa with items)")
    evaluate.add_argument("-k", type=positive_int, default=10, help="results per question (default 10)")
    evaluate.add_argument("--compare", action="store_true", help="dense / BM25 / hybrid and every embedder")
    evaluate.add_argument("--answers", action="store_true", help="evaluate whole answers instead of retrieval")
    evaluate.add_argument("--generator", help="generator for --answers (default: the configured one)")
    evaluate.add_argument("--refusals", action="store_true", help="refusal rates per evidence-score threshold")
    evaluate.add_argument("--no-history", action="store_true",
                          help="conversations: ask the last turn alone, without its earlier turns (the baseline)")
    evaluate.add_argument("--json", action="store_true", help="print JSON only")
    evaluate.set_defaults(handler=cmd_eval)

    show = commands.add_parser("show", help="print a passage or a section in Chinese and English (no id: contents)")
    show.add_argument("id", nargs="?", help="a passage, heading or chunk id: p-1-3-1-001, h-1-3, c-0-003")
    show.add_argument("--section", action="store_true", help="the whole section of a passage id")
    show.set_defaults(handler=cmd_show)

    add_bench_command(commands)
    for command in (search, ask, chat, evaluate):
        command.add_argument("--collection", action="append", metavar="NAME",
                             help="search only this collection (repeatable; default: every collection)")
    add_document_commands(commands)  # rag add | docs | remove (rag/documents_cli.py)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(message)s")
    quiet_libraries()
    try:
        return args.handler(args, with_collections(config.load_settings(), getattr(args, "collection", None)))
    except KNOWN_ERRORS as error:
        print(f"rag: {plain_error(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rag: interrupted", file=sys.stderr)
        return 130


def cmd_bench(args, settings: config.Settings) -> int:
    from rag.bench import BenchOptions, run_bench

    if args.documents:  # rag/bench/documents.py: prints Markdown tables for docs/documents.md
        from rag.bench.documents import main as documents_bench

        return documents_bench([args.documents])

    try:
        run_bench(BenchOptions(quick=args.quick, scales=tuple(args.scale), generators=args.generators,
                               concurrency_local=args.concurrency, out=Path(args.out), questions=args.questions,
                               serve=args.serve, stores=args.stores, generator=args.generator,
                               json_out=Path(args.json) if args.json else None), settings)
    except FileNotFoundError as error:
        raise UserError(str(error)) from None
    return 0
