"""Hostile uploads: broken gzip, gzip bombs, huge lines, no file part; and no lock while parsing."""

import gzip
import io
import json

import pytest
from sqlalchemy import func, select

from app.projects.reader import ImportLimits
from tests.helpers import ranking_items

GOOD = "".join(json.dumps(line) + "\n" for line in ranking_items(3)).encode()


@pytest.fixture
def admin(factory):  # type: ignore[no-untyped-def]
    return factory.user("admin")


@pytest.fixture
def project(factory):  # type: ignore[no-untyped-def]
    return factory.project()


def prompts(session, project) -> int:  # type: ignore[no-untyped-def]
    from app.projects.models import Prompt

    session.expire_all()
    return session.scalar(select(func.count()).where(Prompt.project_id == project.id))


def upload(client, admin, project, data: bytes, name: str = "items.jsonl.gz"):  # type: ignore[no-untyped-def]
    url = f"/api/v1/projects/{project.id}/items"
    return client.post(url, files={"file": (name, data)}, headers=admin.headers)


def test_gzip_uploads_work_and_broken_ones_are_4xx(client, session, admin, project) -> None:  # type: ignore[no-untyped-def]
    packed = gzip.compress(GOOD)
    assert upload(client, admin, project, packed).json()["imported"] == 3
    truncated = upload(client, admin, project, gzip.compress(GOOD * 50)[:-30])
    assert truncated.status_code == 422 and "truncated gzip" in truncated.json()["detail"]
    corrupt = upload(client, admin, project, packed[:12] + b"\xff" * 40 + packed[52:])
    assert corrupt.status_code == 422 and "gzip" in corrupt.json()["detail"]
    not_gzip = upload(client, admin, project, bytes(range(256)) * 40)
    assert not_gzip.status_code == 422 and "line 1" in not_gzip.json()["detail"]
    two_members = upload(client, admin, project, packed + gzip.compress(b"\n"))
    assert two_members.status_code == 200 and two_members.json()["duplicates"] == 3
    assert prompts(session, project) == 3


def test_a_multipart_body_without_a_file_part_is_422(client, admin, project) -> None:  # type: ignore[no-untyped-def]
    url = f"/api/v1/projects/{project.id}/items"
    answer = client.post(
        url, data={"format": "auto"}, files={"other": ("x", b"")}, headers=admin.headers
    )
    assert answer.status_code == 422
    assert answer.json()["field"] == "file"


def test_a_gzip_bomb_is_refused_fast_and_stores_nothing(client, session, admin, project) -> None:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as out:
        chunk = b"\n" * (1024 * 1024)
        for _ in range(50):  # 50 MiB of newlines in about 50 KB
            out.write(chunk)
    bomb = buffer.getvalue()
    assert len(bomb) < 100_000
    answer = upload(client, admin, project, bomb)
    assert answer.status_code == 413
    assert "expands more than" in answer.json()["detail"]
    assert prompts(session, project) == 0


def test_line_length_line_count_and_size_caps(session, project, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from app.errors import Invalid, TooLarge
    from app.projects import importer

    path = tmp_path / "items.jsonl"
    path.write_bytes(GOOD + b'{"prompt": "' + b"x" * 5000 + b'"}\n')
    small = ImportLimits(max_bytes=10**9, max_ratio=100, max_line_bytes=4096, max_lines=10)
    with pytest.raises(Invalid, match="line 4 is longer than 4096 bytes"):
        importer.import_file(session=session, project=project, path=path, limits=small)
    path.write_bytes(GOOD * 4)
    with pytest.raises(TooLarge, match="more than 10 lines"):
        importer.import_file(session=session, project=project, path=path, limits=small)
    tiny = ImportLimits(max_bytes=100, max_ratio=100, max_line_bytes=4096, max_lines=10)
    with pytest.raises(TooLarge, match="larger than 100 bytes"):
        importer.import_file(session=session, project=project, path=path, limits=tiny)
    assert prompts(session, project) == 0


def test_parsing_holds_no_database_lock(session, engine, project, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """While the file is read and validated, another client can write (SQLite: take the lock)."""
    from sqlalchemy import text

    from app.db import make_engine
    from app.projects import importer

    other = make_engine(str(engine.url))
    writes: list[bool] = []
    real = importer.read_lines

    def reading(path, limits):  # type: ignore[no-untyped-def]
        for number, line in real(path, limits):
            if not writes:  # the first line of the first pass
                with other.connect() as conn:
                    if other.dialect.name == "sqlite":
                        conn.exec_driver_sql("PRAGMA busy_timeout=200")
                    conn.execute(text("UPDATE projects SET instructions = 'busy' WHERE id = 0"))
                    conn.commit()
                writes.append(True)
            yield number, line

    monkeypatch.setattr(importer, "read_lines", reading)
    path = tmp_path / "items.jsonl"
    path.write_bytes(GOOD)
    report = importer.import_file(session=session, project=project, path=path)
    assert writes and report.imported == 3
    other.dispose()


def test_lines_with_nan_nul_huge_numbers_or_long_model_names_are_bad_lines(
    session, project, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from app.projects import importer

    bad = [
        '{"prompt": "q", "responses": ["a", "b"], "meta": {"x": NaN}}',
        '{"prompt": "q\\u0000", "responses": ["a", "b"]}',
        '{"prompt": "q", "responses": ["a", "b"], "meta": {"x": 1e400}}',
        '{"prompt": "q", "responses": [{"text": "a", "model": "%s"}, "b"]}' % ("m" * 201),
        "[" * 100_000,
    ]
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(bad) + "\n")
    with pytest.raises(importer.ImportFailed) as failed:
        importer.import_file(session=session, project=project, path=path)
    assert [e.line for e in failed.value.errors] == [1, 2, 3, 4, 5]
    reasons = " | ".join(e.error for e in failed.value.errors)
    assert "NaN" in reasons and "NUL" in reasons and "too large" in reasons
    assert "model is longer than 200" in reasons
    assert prompts(session, project) == 0
