"""Routes served without FastAPI's per-request machinery, built from their own declarations.

The labeling hot path (`app.labeling.api.HOT`: next task, annotate, skip) is declared as
ordinary FastAPI routes: FastAPI documents them and their endpoint functions do the work. Per
request, FastAPI's dependency resolution, parameter validation and response validation cost
about as much CPU as the work itself (py-spy on `bench/labeling_cpu.py`). The lane is the first
route of the app's router. When the app starts it reads each hot route's declaration (method,
path, path/query/header parameters with their types and constraints, body model, dependencies,
status code, response model) and refuses to start if the route declares something it cannot
run the way FastAPI would. Per request it checks the inputs with the declared types (pydantic
adapters of the same field declarations), runs the declared dependencies, calls the endpoint
with them and encodes the answer with the response model's serializer.

An input it does not take on the quick path (a value its type refuses, a query parameter the
route does not declare, a body that is not clean JSON of the model) goes on to the FastAPI
route unchanged, before any dependency has run, so every error is FastAPI's own answer. A body
that is not JSON is passed on unread: the CSRF check of a cookie session reads a form body to
find its token, and a body read here through the form parser could not be handed on.
"""

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.convertors import StringConvertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from app import jsontext
from app.http.limits import PARSED_JSON, is_json, replay

DECLINED = "rlhf.lane.declined"
"""Scope key: the lane passed this request on to the router's other routes."""
MATCHED = "rlhf.lane"
"""Scope key: the lane route that matched the request."""


class LaneError(RuntimeError):
    """A hot route declares something the lane cannot run as FastAPI would (raised at start)."""


class _Decline(Exception):
    """An input the quick path does not take: FastAPI's route answers it."""


@dataclass(frozen=True, slots=True)
class _Param:
    name: str  # the endpoint's argument
    alias: str  # as sent: path name, query key, header name
    adapter: TypeAdapter[Any]
    required: bool
    default: Any


@dataclass(frozen=True, slots=True)
class _Dependency:
    name: str | None  # the endpoint's argument, None for a route-level dependency
    call: Callable[..., Any]
    request_name: str | None
    dependencies: tuple["_Dependency", ...]
    is_async: bool


@dataclass(frozen=True, slots=True)
class _Route:
    route: APIRoute
    method: str
    path: list[_Param]
    query: dict[str, _Param]
    headers: list[_Param]
    body: tuple[str, type[BaseModel]] | None
    dependencies: tuple[_Dependency, ...]
    request_name: str | None
    response_name: str | None
    status: int
    output: TypeAdapter[Any]


def _param(field: Any, alias: str | None = None) -> _Param:
    """A parameter as its declaration types it (FastAPI's `ModelField`)."""
    info = field.field_info
    return _Param(
        name=field.name,
        alias=alias or field.alias,
        adapter=TypeAdapter(Annotated[info.annotation, info]),
        required=info.is_required(),
        default=None if info.is_required() else info.get_default(call_default_factory=True),
    )


def _refuse(route: APIRoute, what: str) -> LaneError:
    return LaneError(f"{route.path}: the lane cannot serve a route with {what}")


def _unsupported(route: APIRoute, dependant: Dependant, top: bool) -> str | None:
    """What of this dependant the lane cannot run, or None."""
    if dependant.cookie_params:
        return "cookie parameters"
    if not top and (
        dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.body_params
        or dependant.response_param_name
    ):
        return f"a dependency with parameters ({dependant.call!r})"
    if (
        dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
        or dependant.own_oauth_scopes
        or dependant.parent_oauth_scopes
    ):
        return "background tasks, security scopes or connection parameters"
    call = dependant.call
    if not top and (inspect.isgeneratorfunction(call) or inspect.isasyncgenfunction(call)):
        return f"a dependency with yield ({call!r})"
    if not top and not dependant.use_cache:
        return f"an uncached dependency ({call!r})"
    return None


def _dependency(route: APIRoute, dependant: Dependant) -> _Dependency:
    problem = _unsupported(route, dependant, top=False)
    if problem is not None:
        raise _refuse(route, problem)
    assert dependant.call is not None
    return _Dependency(
        name=dependant.name,
        call=dependant.call,
        request_name=dependant.request_param_name,
        dependencies=tuple(_dependency(route, sub) for sub in dependant.dependencies),
        is_async=inspect.iscoroutinefunction(dependant.call),
    )


def _build(route: APIRoute) -> _Route:
    """The lane's reading of a route's declaration; LaneError for what it cannot run."""
    dependant = route.dependant
    problem = _unsupported(route, dependant, top=True)
    if problem is not None:
        raise _refuse(route, problem)
    if len(route.methods) != 1:
        raise _refuse(route, f"several methods ({sorted(route.methods)})")
    if not inspect.iscoroutinefunction(route.endpoint):
        raise _refuse(route, "a sync endpoint")
    if not all(isinstance(c, StringConvertor) for c in route.param_convertors.values()):
        raise _refuse(route, "typed path convertors")
    body = None
    if dependant.body_params:
        if len(dependant.body_params) != 1:
            raise _refuse(route, "several body parameters")
        field = dependant.body_params[0]
        model = field.field_info.annotation
        embedded = getattr(field.field_info, "embed", False)
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or embedded:
            raise _refuse(route, "a body that is not one pydantic model")
        body = (field.name, model)
    model = route.response_model
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise _refuse(route, "a response model that is not a pydantic model")
    if (
        route.response_model_include is not None
        or route.response_model_exclude is not None
        or route.response_model_exclude_unset
        or route.response_model_exclude_defaults
        or route.response_model_exclude_none
        or not route.response_model_by_alias
    ):
        raise _refuse(route, "response model options")
    return _Route(
        route=route,
        method=next(iter(route.methods)),
        path=[_param(f) for f in dependant.path_params],
        query={p.alias: p for p in (_param(f) for f in dependant.query_params)},
        headers=[_param(f, f.alias.lower()) for f in dependant.header_params],
        body=body,
        dependencies=tuple(_dependency(route, sub) for sub in dependant.dependencies),
        request_name=dependant.request_param_name,
        response_name=dependant.response_param_name,
        status=route.status_code or 200,
        output=TypeAdapter(model),
    )


def _check(param: _Param, raw: Any) -> Any:
    if raw is None:
        if param.required:
            raise _Decline
        return param.default
    try:
        return param.adapter.validate_python(raw)
    except ValidationError:
        raise _Decline from None


def _query(spec: _Route, query: bytes) -> dict[str, Any]:
    """The declared query parameters; a key the route does not declare, or one sent twice,
    is left to FastAPI."""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True) if query else []
    sent = dict(pairs)
    if len(sent) != len(pairs) or not sent.keys() <= spec.query.keys():
        raise _Decline
    return {p.name: _check(p, sent.get(alias)) for alias, p in spec.query.items()}


def _body(request: Request, model: type[BaseModel], data: bytes) -> BaseModel:
    """The body as the route's model reads it (parsed as FastAPI parses JSON)."""
    parsed = request.scope.get(PARSED_JSON)
    try:
        value = parsed[1] if parsed is not None and parsed[0] == data else jsontext.loads(data)
        return model.model_validate(value)
    except (ValueError, ValidationError, RecursionError):
        raise _Decline from None


async def _solve(dependency: _Dependency, request: Request, cache: dict[Any, Any]) -> Any:
    """Run a dependency as FastAPI does: its own dependencies first, each once per request."""
    if dependency.call in cache:
        return cache[dependency.call]
    kwargs = {d.name: await _solve(d, request, cache) for d in dependency.dependencies}
    kwargs.pop(None, None)
    if dependency.request_name:
        kwargs[dependency.request_name] = request
    call = dependency.call
    value = await call(**kwargs) if dependency.is_async else await run_in_threadpool(call, **kwargs)
    cache[call] = value
    return value


def _answer(spec: _Route, result: Any, sub: Response | None) -> Response:
    if isinstance(result, Response):
        return result
    response = Response(
        spec.output.dump_json(result), status_code=spec.status, media_type="application/json"
    )
    if sub is not None:
        if sub.status_code:
            response.status_code = sub.status_code
        for name, value in sub.headers.items():
            if name != "content-length":
                response.headers[name] = value
    return response


class HotLane(BaseRoute):
    """The lane as the router's first route (see the module's docstring)."""

    def __init__(self, router: Any, routes: Sequence[_Route]) -> None:
        self.router = router
        self.routes = tuple(routes)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or DECLINED in scope:
            return Match.NONE, {}
        for spec in self.routes:
            if scope["method"] != spec.method:
                continue
            found = spec.route.path_regex.match(scope["path"])
            if found is not None:
                return Match.FULL, {MATCHED: (spec, found.groupdict())}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        spec, raw_path = scope[MATCHED]
        request = Request(scope, receive)
        data: bytes | None = None
        try:
            kwargs = {p.name: _check(p, raw_path.get(p.alias)) for p in spec.path}
            kwargs |= _query(spec, scope.get("query_string", b""))
            kwargs |= {p.name: _check(p, request.headers.get(p.alias)) for p in spec.headers}
            if spec.body is not None:
                if not is_json(request.headers.get("content-type", "")):
                    raise _Decline
                data = await request.body()
                kwargs[spec.body[0]] = _body(request, spec.body[1], data)
        except _Decline:
            scope[DECLINED] = True
            await self.router(scope, receive if data is None else replay(data, receive), send)
            return
        cache: dict[Any, Any] = {}
        for dependency in spec.dependencies:
            value = await _solve(dependency, request, cache)
            if dependency.name is not None:
                kwargs[dependency.name] = value
        if spec.request_name:
            kwargs[spec.request_name] = request
        sub = None
        if spec.response_name:
            sub = Response()
            sub.status_code = None  # type: ignore[assignment]  # as FastAPI: unset unless set
            kwargs[spec.response_name] = sub
        result = await spec.route.endpoint(**kwargs)
        await _answer(spec, result, sub)(scope, receive, send)


def install(router: Any, routes: Sequence[BaseRoute], endpoints: Sequence[Callable[..., Any]]):
    """Put a lane for these endpoints (declared in `routes`, a router's own list, with the
    paths the app serves them at) in front of the router's routes; LaneError if one of them is
    not there or declares what the lane cannot run."""
    found = {id(r.endpoint): r for r in routes if isinstance(r, APIRoute)}
    specs = []
    for endpoint in endpoints:
        route = found.get(id(endpoint))
        if route is None:
            raise LaneError(f"no route declares {endpoint.__qualname__}")
        specs.append(_build(route))
    router.routes.insert(0, HotLane(router, specs))
