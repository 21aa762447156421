"""The OpenAPI description, completed with what every route may answer besides success.

FastAPI documents each route's success and its 422 for malformed input. The app answers more:
401/403 from authentication, 404 for ids that name nothing, 409 for conflicts, 413 for large
bodies, and its own 422 shape (`{"detail": "…", "field": "…"}`) for domain rules. Pages answer
HTML (errors too, when a browser asks for HTML) and redirect with 303 after a form post.
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_CODES = {
    "400": "bad request",
    "401": "not signed in (send Authorization: Bearer <token>)",
    "403": "not allowed (admins only, CSRF token missing, or not a project member)",
    "404": "no such object",
    "409": "conflicts with the current state",
    "410": "gone (an expired lease)",
    "413": "request body too large",
    "422": "invalid input; `detail` names the field",
    "429": "too many attempts",
}
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
            ]
        },
        "field": {"type": "string"},
        "request_id": {"type": "string"},
    },
}
HTML = {"text/html": {"schema": {"type": "string"}}}


def _complete(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    components.pop("HTTPValidationError", None)
    error_json = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in schema.get("paths", {}).items():
        page = not path.startswith("/api/")
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if page:
                for code, response in responses.items():
                    if code.startswith("2"):
                        response["content"] = HTML
                responses.setdefault("303", {"description": "redirect (after a form post)"})
            for code, description in ERROR_CODES.items():
                content = error_json | HTML if page else error_json
                responses[code] = {"description": description, "content": content}
    return schema


def install(app: FastAPI) -> None:
    """Serve the completed description at /openapi.json."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _complete(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    routes=app.routes,
                    description=app.description,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
