"""``sleuth index update``: add, replace and delete documents of an index, offline (the index
folder) or through running servers (``--search-url``), committed atomically either way."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sleuth.errors import SleuthError


def update_command(
    index: Annotated[
        Path | None,
        typer.Argument(help="Index folder to update in place (omit with --search-url)"),
    ] = None,
    add: Annotated[
        Path | None,
        typer.Option(
            help="JSONL of documents to add or replace (id, title, text; other keys are fields)"
        ),
    ] = None,
    delete: Annotated[
        Path | None, typer.Option(help="File of document ids to delete, one a line")
    ] = None,
    search_url: Annotated[
        str | None,
        typer.Option(
            help="Send the batch to running servers instead: a URL, several comma-separated "
            "(replicas: each gets the batch) or @FILE of URLs"
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(help="The servers' bearer token (updates need one)", envvar="SLEUTH_TOKEN"),
    ] = None,
) -> None:
    """Add, replace (same id) and delete documents; the batch commits all or nothing."""
    from sleuth.corpus.documents import read_jsonl_documents, reject_duplicate_ids
    from sleuth.progress import stderr

    if (index is None) == (search_url is None):
        raise SleuthError("give an INDEX folder or --search-url (one of the two)")
    if add is None and delete is None:
        raise SleuthError("nothing to update: give --add FILE.jsonl and/or --delete IDS_FILE")
    upserts = list(reject_duplicate_ids(read_jsonl_documents(add), str(add))) if add else []
    deletes = read_ids(delete) if delete else []
    if search_url is None:
        from sleuth.search.updates import apply_update

        result = apply_update(index, upserts, deletes)  # type: ignore[arg-type]
        stderr.print(
            describe(str(index), result.public()), markup=False, highlight=False, soft_wrap=True
        )
        return
    from sleuth.search.pool import parse_addresses
    from sleuth.search.update_client import send_update

    failed = 0
    for answer in send_update(parse_addresses(search_url).urls, upserts, deletes, token=token):
        if answer.result is not None:
            stderr.print(
                describe(answer.url, answer.result), markup=False, highlight=False, soft_wrap=True
            )
        else:
            failed += 1
            stderr.print(f"{answer.url}: not updated: {answer.error}", markup=False, soft_wrap=True)
    if failed:
        raise SleuthError(f"{failed} server(s) not updated; send the batch to them again")


def read_ids(path: Path) -> list[str]:
    """Ids one a line; blank lines skipped, surrounding spaces kept out."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SleuthError(f"cannot read the ids file {path}: {exc}") from None
    ids = [line.strip() for line in text.splitlines() if line.strip()]
    if not ids:
        raise SleuthError(f"{path}: no ids (one document id a line)")
    return ids


def describe(where: str, result: dict[str, Any]) -> str:
    from sleuth.display import safe_text

    return (
        f"{safe_text(where)}: generation {result['generation']}: added {result['added']}, "
        f"updated {result['updated']}, deleted {result['deleted']}; "
        f"{result['documents']:,} documents (commit {result['commit_ms']:.0f} ms)"
    )
