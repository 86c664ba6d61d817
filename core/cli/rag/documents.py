"""`ingest` and `collections`: documents into collections, and the collections themselves."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli.common import walk
from core.rag.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
from core.settings import load_settings


def cmd_ingest(args: argparse.Namespace) -> int:
    from core.files import check_name
    from core.rag.ingest import FileResult, drop_failed_originals, ingest_files
    from core.uploads import UploadError, batch_names, keep_copy, upload_folder

    settings = load_settings()
    folder = upload_folder(settings.data_dir, check_name(args.collection, "collection"))
    # Originals are kept first, as the Documents page keeps its uploads: a re-index rebuilds
    # from them, and a batch stopped halfway leaves them to be stored by the next run.
    files = walk(args.paths)
    kept, refused = [], []
    for path, name in zip(files, batch_names([f.name for f in files])):
        try:
            kept.append(keep_copy(folder, name, path))
        except (UploadError, OSError) as exc:
            error = str(exc) if isinstance(exc, UploadError) else \
                f"{path.name}: could not be read ({exc.strerror or exc})"
            refused.append(FileResult(path.name, "error", error=error))
    if not kept:
        results = []
    elif args.ray is None:
        results = ingest_files(settings, kept, args.collection, args.chunk_size,
                               args.chunk_overlap, ocr=args.ocr, on_ocr_page=_show_ocr_page)
    else:
        from core.rag.ingest_ray import ingest_files_ray

        results = ingest_files_ray(settings, kept, args.collection, args.chunk_size,
                                   args.chunk_overlap, ocr=args.ocr,
                                   address=args.ray or settings.ray_address,
                                   on_ocr_page=_show_ocr_page)
    drop_failed_originals(settings, args.collection, kept, results)
    return _report(refused + results, args.collection, args.json)


def _show_ocr_page(path: Path, done: int, pages: int) -> None:
    """A scan's pages as OCR reads them (seconds each): on stderr, so `--json` output stays
    one object per line, and on one line per file, rewritten in place."""
    from core.rag.ingest import ocr_page_label

    line = (f"{ocr_page_label(done, pages)}" if done < pages
            else f"{pages} scanned page{'s' * (pages != 1)} read with OCR")
    print(f"\r{path.name}: {line}", end="" if done < pages else "\n", file=sys.stderr,
          flush=True)


def _report(results, collection: str, as_json: bool) -> int:
    """One line per file, then a summary; exit 1 if any failed."""
    failed = [r for r in results if r.status != "ok"]
    for r in results:
        if as_json:
            print(json.dumps(r.to_json()))
        else:
            print(f"{r.status:<5} {r.file}: {r.pages} pages, {r.chunks} chunks, "
                  f"{r.seconds:.1f} s" + (f" — {r.error}" if r.error else ""))
    summary = {"summary": {"files": len(results), "ok": len(results) - len(failed),
                           "failed": len(failed), "collection": collection}}
    print(json.dumps(summary) if as_json else
          f"{summary['summary']['ok']} of {len(results)} file(s) stored in '{collection}'")
    return 1 if failed else 0


def cmd_collections(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from core.rag import store
    from core.uploads import forget_uploads

    if args.action == "reindex":
        from core.rag.ingest import reindex

        return _report(reindex(load_settings(), args.name), args.name, args.json)
    chroma = store.client(load_settings())
    if args.action == "list":
        rows = [asdict(c) for c in store.list_collections(chroma)]
        for row in rows:
            print(json.dumps(row) if args.json else
                  f"{row['name']}: {row['chunks']} chunks ({row['embedding_model']}, "
                  f"chunks of {row['chunk_size']}/{row['chunk_overlap']})")
    elif args.action == "show":
        from core.rag.ingest import unstored_originals

        collection = store.get_collection(chroma, args.name)
        info = {**asdict(store.describe(collection)), "documents": store.documents(collection),
                "unstored": [p.name for p in unstored_originals(load_settings(), collection)]}
        print(json.dumps(info, indent=None if args.json else 2))
    else:
        store.delete_collection(chroma, args.name)
        forget_uploads(load_settings().data_dir, args.name)
        print(json.dumps({"deleted": args.name}) if args.json else f"deleted {args.name}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    ing = sub.add_parser("ingest", help="extract, chunk, embed and store documents")
    ing.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (walked)")
    ing.add_argument("--collection", required=True)
    ing.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE)
    ing.add_argument("--chunk-overlap", type=int, default=DEFAULT_CHUNK_OVERLAP)
    ing.add_argument("--ocr", action="store_true",
                     help="read pages without a text layer with tesseract (slow)")
    ing.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                     help="extract, chunk and embed on a Ray cluster (host:port of its head; "
                          "RAY_ADDRESS when left out); without either, on a Ray instance "
                          "started here on all cores")
    ing.add_argument("--json", action="store_true", help="one JSON object per file, then a summary")
    ing.set_defaults(func=cmd_ingest)

    col = sub.add_parser("collections", help="list, show, delete or re-index collections "
                                             "(re-index: chunk again from the kept originals)")
    col.add_argument("action", choices=("list", "show", "delete", "reindex"))
    col.add_argument("name", nargs="?")
    col.add_argument("--json", action="store_true")
    col.set_defaults(func=cmd_collections)
