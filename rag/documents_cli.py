"""``rag add PATH… [--collection NAME] [--json]``, ``rag docs [--json]``, ``rag remove DOC_ID``, and the
``--collection`` option of search / ask / chat / eval. Imports nothing heavy until a command runs."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from rag import config
from rag.errors import UserError


def with_collections(settings: config.Settings, names: list[str] | None) -> config.Settings:
    """The settings searching only ``names`` (each must exist); unchanged when none are named."""
    if not names:
        return settings
    from rag.collections import collection_names

    known = collection_names(settings)
    for name in names:
        if name not in known:
            raise UserError(f"no collection {name!r}; there are: {', '.join(known)} ('rag docs' lists documents)")
    return dataclasses.replace(settings, collections=",".join(dict.fromkeys(names)))


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


class _Bar:
    """One progress line per file on stderr: reading → cutting → embedding n% → done."""

    def __init__(self, quiet: bool):
        self.quiet, self.last = quiet, ("", "", -1)

    def __call__(self, name: str, stage: str, fraction: float) -> None:
        shown = (name, stage, int(fraction * 10))
        if self.quiet or shown == self.last:
            return
        self.last = shown
        end = "\n" if stage == "done" else "\r"
        label = f"{stage} {fraction:.0%}" if stage == "embedding" else stage
        print(f"\r{name}: {label}\033[K", end=end, file=sys.stderr, flush=True)


def cmd_add(args, settings: config.Settings) -> int:
    from rag.collections import add_paths

    results = add_paths(settings, [Path(p) for p in args.paths], args.collection_name,
                        progress=_Bar(quiet=args.json or not sys.stderr.isatty()))
    if not results:
        raise UserError("no PDF, DOCX, HTML, Markdown or text file found in " + ", ".join(args.paths))
    for result in results:
        if args.json:
            _print_json(result.to_json())
        else:
            print(("rag: " if result.status == "error" else "") + result.message,
                  file=sys.stderr if result.status == "error" else sys.stdout)
    return 0 if all(r.status != "error" for r in results) else 1


def cmd_docs(args, settings: config.Settings) -> int:
    from rag.collections import documents

    records = documents(settings)
    if args.json:
        _print_json([_summary(r) for r in records])
        return 0
    if not records:
        print(f"no documents yet in {settings.data_dir}; add some with 'rag add PATH'")
    for record in records:
        pages = f"{record['pages']} pages, " if record.get("pages") else ""
        print(f"{record['id']}  {record['collection']}  {record['name']}  ({pages}{record['passages']} passages, "
              f"added {record['added']})  sha256 {record['sha256'][:16]}…")
    return 0


def _summary(record: dict) -> dict:
    keys = ("id", "collection", "name", "kind", "pages", "passages", "chunks", "sentences", "languages", "added",
            "sha256")
    return {key: record.get(key) for key in keys}


def cmd_remove(args, settings: config.Settings) -> int:
    from rag.collections import remove

    record = remove(settings, args.doc_id)
    print(f"removed {record['id']} ({record['name']}, collection {record['collection']})")
    return 0


def add_document_commands(commands) -> None:
    add = commands.add_parser("add", help="add your own documents (PDF, DOCX, HTML, Markdown, text; files or folders)")
    add.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    add.add_argument("--collection", dest="collection_name", metavar="NAME",
                     help="the collection to add to (default: my-documents, RAG_DEFAULT_COLLECTION)")
    add.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    add.set_defaults(handler=cmd_add)
    docs = commands.add_parser("docs", help="list your documents: collection, pages, passages, added, sha256")
    docs.add_argument("--json", action="store_true", help="print JSON only")
    docs.set_defaults(handler=cmd_docs)
    remove = commands.add_parser("remove", help="remove one of your documents (its id from 'rag docs')")
    remove.add_argument("doc_id", metavar="DOC_ID")
    remove.set_defaults(handler=cmd_remove)

