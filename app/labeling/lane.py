"""The labeling hot path's three routes served without FastAPI's per-request machinery.

`GET …/projects/{id}/tasks/next`, `POST …/assignments/{id}/annotations` and
`POST …/assignments/{id}/skip` are declared in `app.labeling.api`: FastAPI documents them and
their endpoint functions do the work. Per request, FastAPI's dependency resolution, parameter
validation and response validation cost about as much CPU as the work itself (py-spy on
`bench/labeling_cpu.py`). The lane is the first route of the router: it authenticates as the
routes do (`current_user`), reads the few inputs these routes take, checks them as their
declared types would, calls the same endpoint function and encodes the answer with the
response model's serializer. An input it does not take on the quick path (a malformed id, an
unknown query parameter, a body that is not clean JSON of the model) goes on to the FastAPI
route unchanged, so every error is FastAPI's own answer. A body that is not JSON is passed on
before authentication: the CSRF check of a cookie session reads a form body to find its token,
and a body read here through the form parser could not be handed on to the route.
"""

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from app import jsontext
from app.deps import current_user
from app.http.bounds import MAX_ID, MAX_PUBLIC
from app.http.limits import PARSED_JSON, is_json, replay
from app.labeling import api
from app.labeling.schemas import AnnotationIn, SkipIn, SkipOut, SubmitOut, Task
from app.labeling.submitting import MAX_KEY

PATH = re.compile(
    r"/api/v1/(?:projects/([^/]+)/tasks/(next)|assignments/([^/]+)/(annotations|skip))"
)
DECLINED = "rlhf.lane.declined"
"""Scope key: the lane passed this request on to the router's other routes."""


def _id(raw: str, action: str) -> int | None:
    """A path id as the routes' types read it (`Id` for a project, `PublicId` for an
    assignment), or None to leave it to FastAPI."""
    if not (raw.isascii() and raw.isdigit()):
        return None
    value = int(raw)
    low, high = (1, MAX_ID) if action == "next" else (0, MAX_PUBLIC)
    return value if low <= value <= high else None


def _next_mode(query: bytes) -> tuple[bool, str | None]:
    """(taken, mode) for the query string: only ?next=0|1|page, or nothing, is taken."""
    if not query:
        return True, None
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    if len(pairs) == 1 and pairs[0][0] == "next" and pairs[0][1] in ("0", "1", "page"):
        return True, pairs[0][1]
    return False, None


def _is_json(request: Request) -> bool:
    return is_json(request.headers.get("content-type", ""))


def _body(request: Request, model: type[BaseModel], data: bytes) -> BaseModel | None:
    """The body as the route's model reads it (parsed as FastAPI parses JSON), or None."""
    parsed = request.scope.get(PARSED_JSON)
    try:
        value = parsed[1] if parsed is not None and parsed[0] == data else jsontext.loads(data)
        return model.model_validate(value)
    except (ValueError, ValidationError, RecursionError):
        return None


def _answer(result: Any, model: type[BaseModel], status: int, sub: Response | None) -> Response:
    if isinstance(result, Response):
        return result
    content = model.__pydantic_serializer__.to_json(result)
    response = Response(content, status_code=status, media_type="application/json")
    if sub is not None:
        if sub.status_code:
            response.status_code = sub.status_code
        for name, value in sub.headers.items():
            if name != "content-length":
                response.headers[name] = value
    return response


Handler = Callable[[Request, int, str | None], Awaitable[Response | None]]


async def _next(request: Request, project_id: int, mode: str | None) -> Response | None:
    if mode is not None:
        return None
    user = await current_user(request)
    return _answer(await api.next_task(project_id, user), Task, 200, None)


async def _annotate(request: Request, assignment_id: int, mode: str | None) -> Response | None:
    key = request.headers.get("idempotency-key")
    if (key is not None and len(key) > MAX_KEY) or not _is_json(request):
        return None
    user = await current_user(request)
    body = _body(request, AnnotationIn, await request.body())
    if body is None:
        return None
    sub = Response()
    sub.status_code = None  # type: ignore[assignment]  # as FastAPI: unset unless the route sets it
    result = await api.annotate(assignment_id, body, request, sub, user, key, mode)  # type: ignore[arg-type]
    return _answer(result, SubmitOut, 201, sub)


async def _skip(request: Request, assignment_id: int, mode: str | None) -> Response | None:
    if not _is_json(request):
        return None
    user = await current_user(request)
    body = _body(request, SkipIn, await request.body())
    if body is None:
        return None
    result = await api.skip(assignment_id, body, request, user, mode)  # type: ignore[arg-type]
    return _answer(result, SkipOut, 200, None)


ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "next"): _next,
    ("POST", "annotations"): _annotate,
    ("POST", "skip"): _skip,
}


class HotLane(BaseRoute):
    """The lane as the router's first route (see the module's docstring)."""

    def __init__(self, router: Any) -> None:
        self.router = router

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or DECLINED in scope:
            return Match.NONE, {}
        found = PATH.fullmatch(scope["path"])
        if found is None:
            return Match.NONE, {}
        raw_id, action = (found[1], found[2]) if found[1] is not None else (found[3], found[4])
        handler = ROUTES.get((scope["method"], action))
        if handler is None:
            return Match.NONE, {}
        return Match.FULL, {"rlhf.lane": (handler, raw_id, action)}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler, raw_id, action = scope["rlhf.lane"]
        object_id = _id(raw_id, action)
        taken, mode = _next_mode(scope.get("query_string", b""))
        response = None
        request = Request(scope, receive)
        if object_id is not None and taken:
            response = await handler(request, object_id, mode)
        if response is not None:
            await response(scope, receive, send)
            return
        scope[DECLINED] = True
        body: bytes | None = getattr(request, "_body", None)  # read by the lane, if it was
        await self.router(scope, receive if body is None else replay(body, receive), send)


def install(router: Any) -> None:
    """Put the lane in front of the router's routes."""
    router.routes.insert(0, HotLane(router))
