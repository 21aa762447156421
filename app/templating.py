"""Jinja2 templates (autoescape on) with the globals every page needs."""

import re
from html import unescape
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markupsafe import Markup

from app.deps import csrf_token_of
from app.projects.strength import as_lines
from app.runs import metric_info
from trainer.configs import DEFAULT_JUDGE_TEMPLATE

ROOT = Path(__file__).resolve().parent.parent
templates = Jinja2Templates(directory=ROOT / "templates")

# Untrusted text: markdown and code blocks render, raw HTML is escaped, links stay plain.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).disable("image")


# The same for documents the app writes from untrusted names (a snapshot's dataset card), tables on.
_with_tables = MarkdownIt("commonmark", {"html": False, "linkify": False})
_with_tables.enable("table").disable("image")


def _keyboard_scrollable(name: str) -> Any:
    """The renderer's rule `name` with its <pre> in the tab order: a code block too wide for
    its box scrolls sideways there (CSS), and the keyboard can scroll it too."""
    default = getattr(RendererHTML, name)

    def rule(self: RendererHTML, tokens: Any, idx: int, options: Any, env: Any) -> str:
        return default(self, tokens, idx, options, env).replace("<pre", '<pre tabindex="0"', 1)

    return rule


for _rule in ("fence", "code_block"):
    _markdown.add_render_rule(_rule, _keyboard_scrollable(_rule))
    _with_tables.add_render_rule(_rule, _keyboard_scrollable(_rule))


def markdown(text: str | None) -> Markup:
    return Markup(_markdown.render(text or ""))  # noqa: S704 — html=False escapes raw HTML


def markdown_tables(text: str | None, shift: int = 0) -> Markup:
    """`markdown` with GitHub's pipe tables, each heading `shift` levels down (a document's
    `#` under a page's own h1 and h2)."""
    tokens = _with_tables.parse(text or "")
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1]) + shift)}"
    html = _with_tables.renderer.render(tokens, _with_tables.options, {})
    return Markup(html)  # noqa: S704 — html=False escapes raw HTML


def plain(text: str | None) -> str:
    """Markdown as the plain text a reader sees: no `**`, `#` or code fences, one line."""
    html = _markdown.render(text or "")
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def metric(value: object) -> str:
    """A metric for people: 4 significant digits, no float noise (0.1235, 1.235e-05, 12)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


templates.env.filters["markdown"] = markdown
templates.env.filters["markdown_tables"] = markdown_tables
templates.env.filters["metric"] = metric
templates.env.filters["plain"] = plain
templates.env.filters["strength_lines"] = as_lines
templates.env.globals["metric_note"] = metric_info.note
templates.env.globals["default_judge_template"] = DEFAULT_JUDGE_TEMPLATE


def render(request: Request, name: str, status_code: int = 200, **context: Any):
    """Render a page with the CSRF token and the signed-in user in its context."""
    context.setdefault("user", getattr(request.state, "user", None))
    context["csrf_token"] = csrf_token_of(request)
    return templates.TemplateResponse(request, name, context, status_code=status_code)
