"""Streaming, all-or-nothing import of prompts and responses from JSONL (or .jsonl.gz).

Pass 1 reads the file and validates every line, storing nothing and holding no database
transaction (on SQLite a transaction holds the single write lock that labelers need). Pass 2
reads it again and inserts in batches inside one transaction, committed only at the end. Memory
holds one batch and the set of external ids seen, never the whole file. The file is read within
the limits of `app.projects.reader` (size, gzip ratio, line length, line count).
"""

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from app.errors import Invalid
from app.labeling import labels
from app.projects.formats import FORMATS, PARSERS, ImportFormat, Item, LineError, detect
from app.projects.kinds import ProjectKind
from app.projects.models import Project, Prompt, Response
from app.projects.reader import ImportLimits, check, read_lines
from app.projects.schemas import ImportLineError, ImportReport

BATCH = 500
MAX_REPORTED = 200
MAX_RESPONSES = 64


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
    try:
        obj = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise LineError(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    except LineError:
        raise
    except (ValueError, RecursionError) as exc:  # a number too long, nesting too deep
        raise LineError(f"invalid JSON: {exc}"[:200]) from None
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


def import_file(
    *,
    session: Session,
    project: Project,
    path: Path,
    fmt: str = "auto",
    skip_invalid: bool = False,
    limits: ImportLimits | None = None,
) -> ImportReport:
    """Import a file into `project`, all or nothing (or skipping bad lines if asked)."""
    limits = limits or ImportLimits.from_settings()
    kind = ProjectKind(project.kind)
    # End the caller's read transaction: validation below holds no lock (SQLite: the write lock).
    session.commit()
    check(path, limits)  # a bomb or broken gzip is refused before any parsing
    if fmt == "auto":
        fmt = _detect_format(path, limits)
    if fmt not in FORMATS:
        names = ", ".join(ImportFormat)
        raise Invalid(f"format must be {names}; not {fmt!r}", field="format")

    errors: list[ImportLineError] = []
    error_count = 0
    bad_lines: set[int] = set()
    lines = 0
    for number, result in _items(path, fmt, kind, limits):
        lines += 1
        if isinstance(result, LineError):
            error_count += 1
            bad_lines.add(number)
            if len(errors) < MAX_REPORTED:
                errors.append(ImportLineError(line=number, error=str(result)))
    if error_count and not skip_invalid:
        raise ImportFailed(errors, error_count)

    report = ImportReport(
        format=fmt,
        lines=lines,
        imported=0,
        duplicates=0,
        responses=0,
        rankings=0,
        skipped=errors,
        skipped_count=error_count,
    )
    seen: set[str] = set()
    batch: list[Item] = []
    try:
        for number, result in _items(path, fmt, kind, limits):
            if number in bad_lines or isinstance(result, LineError):
                continue
            for item in result:
                if item.external_id in seen:
                    report.duplicates += 1
                    continue
                seen.add(item.external_id)
                batch.append(item)
                if len(batch) >= BATCH:
                    _insert(session, project, batch, report)
                    batch = []
        if batch:
            _insert(session, project, batch, report)
        session.commit()
        if report.imported >= BATCH and session.get_bind().dialect.name == "postgresql":
            # Fresh planner statistics, so assignment walks prompts in id order at once.
            session.execute(sql("ANALYZE prompts, responses"))
            session.commit()
    except BaseException:
        session.rollback()
        raise
    return report


def _insert(session: Session, project: Project, items: list[Item], report: ImportReport) -> None:
    existing = set(
        session.scalars(
            select(Prompt.external_id).where(
                Prompt.project_id == project.id,
                Prompt.external_id.in_([i.external_id for i in items]),
            )
        )
    )
    fresh = [i for i in items if i.external_id not in existing]
    report.duplicates += len(items) - len(fresh)
    prompts = [
        Prompt(
            project_id=project.id,
            external_id=i.external_id,
            messages=i.messages,
            meta=i.meta,
            is_gold=i.gold is not None,
            gold=i.gold,
        )
        for i in fresh
    ]
    session.add_all(prompts)
    session.flush()
    responses_of: list[list[Response]] = []
    for item, prompt in zip(fresh, prompts, strict=True):
        rows = [
            Response(
                prompt_id=prompt.id, position=pos, text=r["text"], model=r["model"], meta=r["meta"]
            )
            for pos, r in enumerate(item.responses)
        ]
        responses_of.append(rows)
        session.add_all(rows)
    session.flush()
    for item, prompt, rows in zip(fresh, prompts, responses_of, strict=True):
        if item.ranking is not None:
            labels.add_imported(
                session=session,
                project_id=project.id,
                prompt_id=prompt.id,
                kind=ProjectKind.ranking,
                payload={"ranking": [rows[i].id for i in item.ranking]},
            )
            report.rankings += 1
        report.responses += len(rows)
    session.flush()
    session.expunge_all()
    report.imported += len(fresh)
