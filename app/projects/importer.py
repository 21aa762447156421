"""Streaming, all-or-nothing import of prompts and responses from JSONL (or .jsonl.gz).

Lines are parsed and validated as they stream by and stored in chunks (`app.projects.bulk`:
COPY on PostgreSQL, executemany on SQLite) inside one transaction, committed only at the end;
a bad line anywhere means nothing is stored, and the error names every bad line (the first
200). On SQLite, where a write transaction holds the one write lock labelers need, a first
pass validates the whole file holding no lock and a second one stores; on PostgreSQL one pass
does both. Memory holds one chunk and the set of external ids seen, never the whole file. The
file is read within the limits of `app.projects.reader` (size, gzip ratio, line length, line
count).
"""

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from app import jsontext
from app.errors import Invalid
from app.labeling import labels
from app.progress import Progress
from app.projects.bulk import BulkWriter
from app.projects.formats import FORMATS, PARSERS, ImportFormat, Item, LineError, detect
from app.projects.kinds import ProjectKind
from app.projects.models import Project
from app.projects.reader import ImportLimits, check, read_lines
from app.projects.schemas import ImportLineError, ImportReport

CHUNK = 1000
"""Prompts stored per round trip (a COPY, or an executemany)."""
PROGRESS_EVERY = 256
ANALYZE_AFTER = 500
MAX_REPORTED = 200
MAX_RESPONSES = 64
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


class ImportFailed(Invalid):
    """Nothing was imported; `errors` lists the first bad lines."""

    def __init__(self, errors: list[ImportLineError], error_count: int) -> None:
        first = errors[0]
        more = f" (and {error_count - 1} more)" if error_count > 1 else ""
        super().__init__(f"line {first.line}: {first.error}{more}; nothing was imported")
        self.errors = errors
        self.error_count = error_count


def _refuse_constant(name: str) -> Any:
    raise LineError(f"{name} is not a JSON number")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise LineError(f"the number {literal[:40]} is too large")
    return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _decode(text: str) -> dict[str, Any]:
    if text.startswith("\x00"):
        raise LineError(text[1:])
    return _checked(jsontext.loads(text, _standard), text)


def _standard(text: str) -> Any:
    """The standard parser, whose errors every bad line is named with."""
    try:
        obj = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise LineError(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    except LineError:
        raise
    except (ValueError, RecursionError) as exc:  # a number too long, nesting too deep
        raise LineError(f"invalid JSON: {exc}"[:200]) from None
    if _SURROGATE.search(text):
        try:
            json.dumps(obj, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise LineError(
                "text must be valid Unicode (a lone surrogate \\uD800–\\uDFFF)"
            ) from None
    return obj


def _checked(obj: Any, text: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise LineError(f"each line must be a JSON object, not {type(obj).__name__}")
    if "\\u0000" in text and _has_nul(obj):
        raise LineError("text must not contain the NUL character (\\u0000)")
    return obj


def _check_fits(item: Item, kind: ProjectKind) -> None:
    n = len(item.responses)
    for i, response in enumerate(item.responses):
        if response["model"] is not None and len(response["model"]) > 200:
            raise LineError(f"responses[{i}].model is longer than 200 characters")
    if n > MAX_RESPONSES:
        raise LineError(f"{n} responses; at most {MAX_RESPONSES} per prompt")
    # A prompt without responses waits for a generation run to add them (it is served once it
    # has enough); one lone response cannot be ranked.
    if kind == ProjectKind.ranking and n == 1:
        raise LineError("a ranking project needs no responses (to generate them) or at least 2")
    if item.gold is not None:
        wanted = {ProjectKind.ranking: "ranking", ProjectKind.rating: "scores"}.get(kind)
        if wanted not in item.gold:
            raise LineError(
                f'gold of a {kind} project must be {{"{wanted}": [...]}}'
                if wanted
                else "a demonstration project has no gold items"
            )


def _items(
    path: Path, fmt: str, kind: ProjectKind, limits: ImportLimits
) -> Iterator[tuple[int, list[Item] | LineError]]:
    """(line number, the line's items or its error); one line may hold several items."""
    parse = PARSERS[fmt]
    for number, line in read_lines(path, limits):
        if not line.strip():
            continue
        try:
            parsed = parse(_decode(line))
            items = parsed if isinstance(parsed, list) else [parsed]
            for item in items:
                _check_fits(item, kind)
        except LineError as exc:
            yield number, exc
        else:
            yield number, items


def _detect_format(path: Path, limits: ImportLimits) -> str:
    for _, line in read_lines(path, limits):
        if line.strip():
            try:
                return detect(_decode(line))
            except LineError:
                return "jsonl"
    return "jsonl"


def _scan(
    path: Path,
    fmt: str,
    kind: ProjectKind,
    limits: ImportLimits,
    state: "_Pass",
    store: Callable[[list[Item]], None] | None,
) -> None:
    """One pass over the file: validate every line; if `store` is given, hand it chunks of
    items (duplicates of earlier lines dropped) until the first bad line (not with
    skip_invalid), after which lines are only validated so that every bad line is named."""
    chunk: list[Item] = []
    for number, result in _items(path, fmt, kind, limits):
        state.lines += 1
        if isinstance(result, LineError):
            state.bad(number, result)
            if not state.skip_invalid:
                store, chunk = None, []
        elif store is not None:
            for item in result:
                if item.external_id in state.seen:
                    state.report.duplicates += 1
                    continue
                state.seen.add(item.external_id)
                chunk.append(item)
            if len(chunk) >= CHUNK:
                store(chunk)
                chunk = []
        if state.progress is not None and number % PROGRESS_EVERY == 0:
            state.progress(state.report.imported, state.offset + number, state.total)
    if chunk and store is not None:
        store(chunk)


class _Pass:
    """What the passes over one file share: the report, bad lines, external ids seen."""

    def __init__(self, report: ImportReport, skip_invalid: bool, progress: Progress | None):
        self.report = report
        self.skip_invalid = skip_invalid
        self.progress = progress
        self.errors: list[ImportLineError] = []
        self.error_count = 0
        self.seen: set[str] = set()
        self.lines = 0
        self.offset = 0
        self.total = 0

    def bad(self, number: int, error: LineError) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED:
            self.errors.append(ImportLineError(line=number, error=str(error)))

    def failed(self) -> ImportFailed | None:
        if self.error_count and not self.skip_invalid:
            return ImportFailed(self.errors, self.error_count)
        return None


def _empty(state: "_Pass") -> Invalid | None:
    """The refusal of a file without a single line to read (empty, or blank lines only): an
    import of 0 prompts is a mistake (the wrong file, a failed download), not a success."""
    if state.lines:
        return None
    return Invalid(
        "the file holds no prompts: it is empty or has only blank lines; nothing was imported",
        field="file",
    )


def import_file(
    *,
    session: Session,
    project: Project,
    path: Path,
    fmt: str = "auto",
    skip_invalid: bool = False,
    limits: ImportLimits | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a file into `project`, all or nothing (or skipping bad lines if asked)."""
    limits = limits or ImportLimits.from_settings()
    kind = ProjectKind(project.kind)
    # End the caller's read transaction: validation below holds no lock (SQLite: the write lock).
    session.commit()
    lines = check(path, limits)  # a bomb or broken gzip is refused before any parsing
    if fmt == "auto":
        fmt = _detect_format(path, limits)
    if fmt not in FORMATS:
        names = ", ".join(ImportFormat)
        raise Invalid(f"format must be {names}; not {fmt!r}", field="format")

    report = ImportReport(
        format=fmt, lines=0, imported=0, duplicates=0, responses=0, rankings=0, skipped=[]
    )
    state = _Pass(report, skip_invalid, progress)
    postgres = session.get_bind().dialect.name == "postgresql"
    # SQLite: a first pass validates holding no lock, a second one stores. PostgreSQL: one
    # pass validates and stores (its open transaction blocks nobody); a bad line ends storing.
    state.total = lines if postgres else 2 * lines
    if not postgres:
        _scan(path, fmt, kind, limits, state, None)
        if failure := state.failed() or _empty(state):
            raise failure
        state.lines, state.offset, state.errors, state.error_count = 0, lines, [], 0
    writer: BulkWriter | None = None

    def store(chunk: list[Item]) -> None:
        nonlocal writer
        writer = writer or BulkWriter(session, project.id)
        _store(session, writer, project.id, kind, chunk, report)

    try:
        _scan(path, fmt, kind, limits, state, store)
        if failure := state.failed() or _empty(state):
            raise failure
        session.commit()
        if report.imported >= ANALYZE_AFTER and postgres:
            # Fresh planner statistics, so assignment walks prompts in id order at once.
            session.execute(sql("ANALYZE prompts, responses"))
            session.commit()
    except BaseException:
        session.rollback()
        raise
    report.lines = state.lines
    report.skipped = state.errors
    report.skipped_count = state.error_count
    if progress is not None:
        progress(report.imported, state.total, state.total)
    return report


def import_rows(
    *, session: Session, project: Project, rows: Iterable[dict[str, Any]], fmt: str = "jsonl"
) -> ImportReport:
    """Import parsed records (each what one line of `fmt` holds) into `project` inside the
    caller's transaction: nothing is committed, and a bad record raises ImportFailed (records
    numbered from 1) for the caller to roll back. For rows the app made itself (a next round's
    prompts); files go through `import_file`."""
    kind = ProjectKind(project.kind)
    report = ImportReport(
        format=fmt, lines=0, imported=0, duplicates=0, responses=0, rankings=0, skipped=[]
    )
    state = _Pass(report, skip_invalid=False, progress=None)
    writer = BulkWriter(session, project.id)
    chunk: list[Item] = []
    for number, row in enumerate(rows, start=1):
        state.lines += 1
        try:
            parsed = PARSERS[fmt](row)
            items = parsed if isinstance(parsed, list) else [parsed]
            for item in items:
                _check_fits(item, kind)
        except LineError as exc:
            state.bad(number, exc)
            continue
        if state.error_count:
            continue  # nothing will be stored: the rest is only validated
        for item in items:
            if item.external_id in state.seen:
                report.duplicates += 1
                continue
            state.seen.add(item.external_id)
            chunk.append(item)
        if len(chunk) >= CHUNK:
            _store(session, writer, project.id, kind, chunk, report)
            chunk = []
    if failure := state.failed():
        raise failure
    if chunk:
        _store(session, writer, project.id, kind, chunk, report)
    report.lines = state.lines
    return report


def _store(
    session: Session,
    writer: BulkWriter,
    project_id: int,
    kind: ProjectKind,
    items: list[Item],
    report: ImportReport,
) -> None:
    existing = writer.existing([i.external_id for i in items])
    fresh = [i for i in items if i.external_id not in existing]
    report.duplicates += len(items) - len(fresh)
    stored = writer.write(fresh)
    for item, (prompt_id, ids) in zip(fresh, stored, strict=True):
        if item.ranking is not None:
            labels.add_imported(
                session=session,
                project_id=project_id,
                prompt_id=prompt_id,
                kind=ProjectKind.ranking,
                payload={"ranking": [ids[i] for i in item.ranking]},
            )
            report.rankings += 1
        report.responses += len(ids)
    session.flush()
    session.expunge_all()
    report.imported += len(fresh)
