"""Which parser reads each import format, given the project the import goes into."""

from collections.abc import Callable
from typing import Any

from app.projects import arena, argilla, labelstudio, oasst
from app.projects.foreign import Context
from app.projects.formats import PARSERS, ImportFormat, Item

Parser = Callable[[dict[str, Any]], Item | list[Item]]
"""One record (a decoded JSON object) → its item or items, or LineError."""


def parser_for(fmt: str, ctx: Context) -> Parser:
    """The parser of `fmt` for the project and files of `ctx`."""
    if fmt == ImportFormat.labelstudio:
        return labelstudio.parser(ctx)
    if fmt == ImportFormat.oasst:
        return oasst.parser(ctx)
    if fmt == ImportFormat.argilla:
        return argilla.parser(ctx)
    if fmt == ImportFormat.arena:
        return arena.parser(ctx)
    return PARSERS[fmt]
