"""Streaming, all-or-nothing import of prompts, responses and their labels from JSONL (or
.jsonl.gz), a JSON array (another tool's export) or Parquet.

Lines are parsed and validated as they stream by and stored in chunks (`app.projects.bulk`:
COPY on PostgreSQL, executemany on SQLite) inside one transaction, committed only at the end;
a bad line anywhere means nothing is stored, and the error names every bad line (the first
200). On SQLite, where a write transaction holds the one write lock labelers need, a first
pass validates the whole file holding no lock and a second one stores; on PostgreSQL one pass
does both. Memory holds one chunk and the set of external ids seen, never the whole file. The
file is read within the limits of `app.projects.reader` (size, gzip ratio, line length, line
count); a JSON array is parsed as it streams, one element at a time.

Labels that come with a file (an export of Label Studio, Argilla, Open-Assistant or Chatbot
Arena) are checked as a labeler's submit would be (`labeling.validation`) and stored with their
prompts, each under its source annotator (`auth.service.source_annotators`: `labelstudio:7`, a
labeler who cannot sign in), by `labeling.imported.store_imported`.
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
from app.auth import service as auth_service
from app.errors import DomainError, Invalid
from app.labeling import imported
from app.labeling.models import Assignment
from app.labeling.schemas import AnnotationIn
from app.labeling.validation import validate
from app.progress import Progress
from app.projects.bulk import BulkWriter
from app.projects.foreign import Context
from app.projects.formats import FORMATS, ImportFormat, Item, LineError, detect
from app.projects.kinds import ProjectKind
from app.projects.models import Project
from app.projects.parsers import parser_for
from app.projects.reader import (
    ImportLimits,
    Records,
    check,
    read_lines,
    read_records,
    records_of,
)
from app.projects.schemas import ImportLineError, ImportReport

CHUNK = 1000
"""Prompts stored per round trip (a COPY, or an executemany)."""
LABELS_CHUNK = 5000
"""… or fewer, when their labels reach this many."""
PROGRESS_EVERY = 256
ANALYZE_AFTER = 500
MAX_REPORTED = 200
MAX_RESPONSES = 64
MAX_VERDICTS = 4096
MAX_VERDICT_KEY = 1000
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


class ImportFailed(Invalid):
    """Nothing was imported; `errors` lists the first bad lines."""

    def __init__(self, errors: list[ImportLineError], error_count: int, unit: str = "line") -> None:
        first = errors[0]
        more = f" (and {error_count - 1} more)" if error_count > 1 else ""
        super().__init__(f"{unit} {first.line}: {first.error}{more}; nothing was imported")
        self.errors = errors
        self.error_count = error_count
        self.unit = unit
        """What `line` counts: line, record (of a JSON array) or row (Parquet)."""


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


class _Checks:
    """What the checks of one import's labels reuse, per number of responses n: `shown`, an
    assignment showing n responses in import order (an ORM object costs ~35 µs), and
    `verdicts`, the payload `validate` returned for a payload as given (keyed by its repr,
    which tells 1, 1.0 and True apart). `validate` reads nothing else but the project, so an
    export's many equal payloads (a pairwise choice is one of two) meet it once; the model
    (`AnnotationIn`) still checks every label whole. A Label Studio export of 20k pairwise
    tasks × 3: the labels' check fell from 0.6–0.8 to 0.25–0.3 CPU-seconds. At most
    MAX_VERDICTS payloads of at most MAX_VERDICT_KEY characters are kept (free text seldom
    repeats)."""

    def __init__(self) -> None:
        self.shown: dict[int, Assignment] = {}
        self.verdicts: dict[tuple[int, str], dict[str, Any]] = {}

    def payload(
        self, project: Project, n: int, given: dict[str, Any], body: AnnotationIn
    ) -> dict[str, Any]:
        """The payload to store: what `validate` returns for `body` (the model of `given`)."""
        key = (n, repr(given))
        found = self.verdicts.get(key)
        if found is None:
            if n not in self.shown:
                self.shown[n] = Assignment(response_ids=list(range(n)))
            found, _ = validate(project=project, assignment=self.shown[n], body=body)
            if len(key[1]) <= MAX_VERDICT_KEY and len(self.verdicts) < MAX_VERDICTS:
                self.verdicts[key] = found
        return found


def _check_fits(item: Item, project: Project, checks: _Checks) -> None:
    kind = ProjectKind(project.kind)
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
    if item.labels:
        _check_labels(item, project, checks)


def _check_labels(item: Item, project: Project, checks: _Checks) -> None:
    """Check each label as a labeler's submit of it would be checked (the payload stored is
    the one that check returns; payloads are not changed after it, and equal ones may be one
    object)."""
    n = len(item.responses)
    for label in item.labels:
        if len(label.labeler) > 320:
            raise LineError(f"label {label.key}: the labeler's name is too long")
        if label.payload is None:
            continue
        try:
            body = AnnotationIn.model_validate(label.payload | {"duration_ms": label.duration_ms})
            payload = checks.payload(project, n, label.payload, body)
        except DomainError as exc:
            raise LineError(f"label {label.key} by {label.labeler}: {exc.message}") from None
        except ValueError as exc:  # pydantic's ValidationError
            raise LineError(f"label {label.key} by {label.labeler}: {exc}"[:500]) from None
        label.payload = payload


def _record(value: Any, unit: str, clean: bool = False) -> dict[str, Any]:
    """A record as an object: a line decoded, an array element or a row checked (`clean`: it
    cannot hold a NUL character)."""
    if unit == "line":
        return _decode(value)
    if not isinstance(value, dict):
        raise LineError(f"each {unit} must be a JSON object, not {type(value).__name__}")
    if not clean and _has_nul(value):
        raise LineError("text must not contain the NUL character (\\u0000)")
    return value


def _read(
    path: Path, records: Records, limits: ImportLimits
) -> Iterator[tuple[int, int, Any, bool]]:
    """(number, position, value, clean) of each record: a line's text, an element or a row
    (see `read_records`)."""
    if records.unit != "line":
        yield from read_records(path, records, limits)
        return
    for number, line in read_lines(path, limits):
        yield number, number, line, False


def _items(
    numbered: Iterable[tuple[int, int, Any]],
    as_record: Callable[[Any], dict[str, Any]],
    parse: Callable[[dict[str, Any]], Any],
    project: Project,
) -> Iterator[tuple[int, int, list[Item] | LineError]]:
    """(record number, position, the record's items or its error) of each (number, position,
    raw record); one record may hold several items."""
    checks = _Checks()
    for number, position, raw in numbered:
        try:
            parsed = parse(as_record(raw))
            items = parsed if isinstance(parsed, list) else [parsed]
            for item in items:
                _check_fits(item, project, checks)
        except LineError as exc:
            yield number, position, exc
        else:
            yield number, position, items


def _file_items(
    path: Path,
    records: Records,
    parse: Callable[[dict[str, Any]], Any],
    project: Project,
    limits: ImportLimits,
) -> Iterator[tuple[int, int, list[Item] | LineError]]:
    """`_items` of a file's records (blank lines skipped)."""
    unit = records.unit
    numbered = (
        (number, position, (value, clean))
        for number, position, value, clean in _read(path, records, limits)
        if unit != "line" or value.strip()
    )
    return _items(numbered, lambda raw: _record(raw[0], unit, raw[1]), parse, project)


def _detect_format(path: Path, records: Records, limits: ImportLimits) -> str:
    for _, _, value, _ in _read(path, records, limits):
        if records.unit != "line" or value.strip():
            try:
                return detect(_record(value, records.unit))
            except LineError:
                return "jsonl"
    return "jsonl"


def _scan(
    results: Iterable[tuple[int, int, list[Item] | LineError]],
    state: "_Pass",
    store: Callable[[list[Item]], None] | None,
) -> None:
    """One pass over the records (`_items`): count and name the bad ones; if `store` is given,
    hand it chunks of items (duplicates of earlier records dropped) until the first bad record
    (not with skip_invalid), after which records are only checked so that every bad one is
    named."""
    chunk: list[Item] = []
    labels_in_chunk = 0
    for number, position, result in results:
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
                labels_in_chunk += len(item.labels)
            if len(chunk) >= CHUNK or labels_in_chunk >= LABELS_CHUNK:
                store(chunk)
                chunk, labels_in_chunk = [], 0
        if state.progress is not None and number % PROGRESS_EVERY == 0:
            state.progress(state.report.imported, state.offset + position, state.total)
    if chunk and store is not None:
        store(chunk)


class _Pass:
    """What the passes over one file share: the report, bad records, external ids seen, the
    source annotators' user ids."""

    def __init__(self, report: ImportReport, skip_invalid: bool, progress: Progress | None):
        self.report = report
        self.skip_invalid = skip_invalid
        self.progress = progress
        self.errors: list[ImportLineError] = []
        self.error_count = 0
        self.seen: set[str] = set()
        self.labelers: dict[str, int] = {}
        self.lines = 0
        self.offset = 0
        self.total = 0

    def bad(self, number: int, error: LineError) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED:
            self.errors.append(ImportLineError(line=number, error=str(error)))

    def failed(self) -> ImportFailed | None:
        if self.error_count and not self.skip_invalid:
            return ImportFailed(self.errors, self.error_count, self.report.unit)
        return None


def _empty(state: "_Pass") -> Invalid | None:
    """The refusal of a file without a single record to read (empty, or blank lines only): an
    import of 0 prompts is a mistake (the wrong file, a failed download), not a success."""
    if state.lines:
        return None
    return Invalid(
        "the file holds no prompts: it is empty or has only blank lines; nothing was imported",
        field="file",
    )


def _written_tables(report: ImportReport) -> tuple[str, ...]:
    """The tables an import wrote to, for fresh planner statistics (leases walk prompts in id
    order at once). Only those: the statistics of an empty assignments table would have a new
    project's leases scan it whole until autovacuum analyzes it again (4× the database's CPU
    per labeling cycle in `bench/labeling_load.py`)."""
    tables = ("prompts", "responses")
    if report.rankings or report.labels or report.skipped_labels:
        tables += ("assignments", "annotations")
    return tables


def _settings_beside(path: Path, fmt: str) -> dict[str, Any] | None:
    """An Argilla dataset's settings, when its export folder holds them next to the file."""
    found = path.parent / ".argilla" / "settings.json"
    if fmt not in ("auto", ImportFormat.argilla) or not found.is_file():
        return None
    try:
        settings = json.loads(found.read_text())
    except (OSError, ValueError) as exc:
        raise Invalid(f"{found}: not readable JSON ({exc})", field="file") from None
    return settings if isinstance(settings, dict) else None


MAX_LABEL_CONFIG = 1_000_000
"""The longest Label Studio labeling config an upload may be, in bytes."""


def label_config_text(raw: bytes) -> str | None:
    """An uploaded Label Studio labeling config as text, or None when it is empty (no file
    chosen); Invalid naming `label_config` when it is longer than MAX_LABEL_CONFIG bytes or not
    UTF-8. Readers read at most MAX_LABEL_CONFIG + 1 bytes of it."""
    if len(raw) > MAX_LABEL_CONFIG:
        raise Invalid("the label config is longer than 1 MB", field="label_config")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid("the label config is not UTF-8 text", field="label_config") from None
    return text if text.strip() else None


def import_file(
    *,
    session: Session,
    project: Project,
    path: Path,
    fmt: str = "auto",
    skip_invalid: bool = False,
    limits: ImportLimits | None = None,
    progress: Progress | None = None,
    label_config: str | None = None,
    settings: dict[str, Any] | None = None,
) -> ImportReport:
    """Import a file into `project`, all or nothing (or skipping bad records if asked).

    `label_config`: a Label Studio project's labeling config (XML); `settings`: an Argilla
    dataset's settings (read from `.argilla/settings.json` beside the file when not given)."""
    limits = limits or ImportLimits.from_settings()
    kind = ProjectKind(project.kind)
    # End the caller's read transaction: validation below holds no lock (SQLite: the write lock).
    session.commit()
    lines = check(path, limits)  # a bomb or broken gzip is refused before any parsing
    records = records_of(path, lines, limits)
    if fmt == "auto":
        fmt = _detect_format(path, records, limits)
    if fmt not in FORMATS:
        names = ", ".join(ImportFormat)
        raise Invalid(f"format must be {names}; not {fmt!r}", field="format")
    ctx = Context(
        kind=kind,
        rating_scale=project.rating_scale,
        questions=list(project.questions or []),
        label_config=label_config,
        settings=settings if settings is not None else _settings_beside(path, fmt),
    )
    try:
        parse = parser_for(fmt, ctx)
    except LineError as exc:
        raise Invalid(str(exc), field="label_config") from None

    report = ImportReport(
        format=fmt,
        lines=0,
        imported=0,
        duplicates=0,
        responses=0,
        rankings=0,
        skipped=[],
        unit=records.unit,
    )
    state = _Pass(report, skip_invalid, progress)
    postgres = session.get_bind().dialect.name == "postgresql"
    # SQLite: a first pass validates holding no lock, a second one stores. PostgreSQL: one
    # pass validates and stores (its open transaction blocks nobody); a bad line ends storing.
    state.total = records.total if postgres else 2 * records.total
    if not postgres:
        _scan(_file_items(path, records, parse, project, limits), state, None)
        if failure := state.failed() or _empty(state):
            raise failure
        state.lines, state.offset, state.errors, state.error_count = 0, records.total, [], 0
    writer: BulkWriter | None = None

    def store(chunk: list[Item]) -> None:
        nonlocal writer
        writer = writer or BulkWriter(session, project.id)
        _store(session, writer, kind, chunk, state)

    try:
        _scan(_file_items(path, records, parse, project, limits), state, store)
        if failure := state.failed() or _empty(state):
            raise failure
        session.commit()
        if report.imported >= ANALYZE_AFTER and postgres:
            session.execute(sql(f"ANALYZE {', '.join(_written_tables(report))}"))
            session.commit()
    except BaseException:
        session.rollback()
        raise
    report.lines = state.lines
    report.skipped = state.errors
    report.skipped_count = state.error_count
    report.notes = list(ctx.notes)
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
    ctx = Context(
        kind=kind, rating_scale=project.rating_scale, questions=list(project.questions or [])
    )
    parse = parser_for(fmt, ctx)
    numbered = ((number, number, row) for number, row in enumerate(rows, start=1))
    _scan(
        _items(numbered, lambda row: row, parse, project),
        state,
        lambda chunk: _store(session, writer, kind, chunk, state),
    )
    if failure := state.failed():
        raise failure
    report.lines = state.lines
    return report


def _store(
    session: Session,
    writer: BulkWriter,
    kind: ProjectKind,
    items: list[Item],
    state: _Pass,
) -> None:
    report = state.report
    existing = writer.existing([i.external_id for i in items])
    fresh = [i for i in items if i.external_id not in existing]
    report.duplicates += len(items) - len(fresh)
    names = {label.labeler for item in fresh for label in item.labels}
    missing = names - state.labelers.keys()
    if missing:
        found, created = auth_service.source_annotators(session=session, names=missing)
        report.labelers += created
        state.labelers.update(found)
    stored = writer.write(fresh)
    labeled: list[tuple[int, list[int], int, list[Any]]] = []
    for item, (prompt_id, ids) in zip(fresh, stored, strict=True):
        if item.ranking is not None:
            imported.add_imported(
                session=session,
                project_id=writer.project_id,
                prompt_id=prompt_id,
                kind=ProjectKind.ranking,
                payload={"ranking": [ids[i] for i in item.ranking]},
            )
            report.rankings += 1
        by_labeler: dict[str, list[Any]] = {}
        for label in item.labels:
            by_labeler.setdefault(label.labeler, []).append(label)
        for name, given in by_labeler.items():
            labeled.append((prompt_id, ids, state.labelers[name], given))
        report.responses += len(ids)
    if labeled:
        added, skipped = imported.store_imported(writer=writer, kind=kind, labeled=labeled)
        report.labels += added
        report.skipped_labels += skipped
    session.flush()
    session.expunge_all()
    report.imported += len(fresh)
