"""The labeling page's own promises, through the TestClient: skip reasons that fit the task, and
the icon browsers ask for."""

import re
import struct
from html import unescape

import pytest

from tests.helpers import ranking_items

IDENTICAL = "The responses are (nearly) identical"


def _skip_reasons(client, factory, tmp_path, **fields) -> list[str]:  # type: ignore[no-untyped-def]
    project = factory.project(**fields)
    if fields["kind"] == "demonstration":
        items = [{"id": "d1", "prompt": "Write a haiku"}]
    else:
        items = ranking_items(1, k=fields["k"])
    factory.items(project, items, tmp_path)
    labeler = factory.user()
    page = client.get(
        f"/projects/{project.id}/label", headers=labeler.headers | {"Accept": "text/html"}
    )
    assert page.status_code == 200
    reasons = re.findall(r'<input type="radio" name="reason" value="([^"]*)"', page.text)
    assert reasons[-1] == "other"  # always there, with its own text box
    return [unescape(reason) for reason in reasons[:-1]]


@pytest.mark.parametrize(
    ("fields", "identical"),
    [
        ({"kind": "ranking", "k": 2}, True),
        ({"kind": "ranking", "k": 4}, True),
        ({"kind": "rating", "k": 2}, True),
        ({"kind": "rating", "k": 1}, False),  # one response: nothing to be identical to
    ],
)
def test_skip_reasons_about_responses_need_responses(client, factory, tmp_path, fields, identical):  # type: ignore[no-untyped-def]
    reasons = _skip_reasons(client, factory, tmp_path, **fields)
    assert (IDENTICAL in reasons) is identical
    assert reasons[:2] == ["I can't judge this topic", "The prompt is broken or unclear"]
    assert "Offensive or disturbing content" in reasons


def test_a_demonstration_offers_no_reason_about_responses(client, factory, tmp_path) -> None:
    reasons = _skip_reasons(client, factory, tmp_path, kind="demonstration", k=1)
    assert reasons, "a demonstration can be skipped with a reason"
    assert not [r for r in reasons if "response" in r.lower() or "judge" in r.lower()]
    assert "The prompt is broken or unclear" in reasons


def test_favicon_ico_is_an_icon_anyone_can_fetch(client) -> None:
    answer = client.get("/favicon.ico")  # signed out: browsers ask on the login page too
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/x-icon"
    reserved, kind, count = struct.unpack("<HHH", answer.content[:6])
    assert (reserved, kind, count) == (0, 1, 1)  # an ICO holding one image …
    width, height, *_, size, offset = struct.unpack("<BBBBHHII", answer.content[6:22])
    assert (width, height) == (32, 32)
    image = answer.content[offset : offset + size]
    assert len(image) == size and image.startswith(b"\x89PNG\r\n\x1a\n")  # … a 32x32 PNG
    assert "max-age" in answer.headers["cache-control"]


def test_every_page_links_its_icons(client) -> None:
    page = client.get("/login")
    links = re.findall(r'<link rel="icon" href="([^"]+)"', page.text)
    assert links == ["/favicon.ico", "/static/favicon.svg"]
    svg = client.get("/static/favicon.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg") and "<script" not in svg.text
