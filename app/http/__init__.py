"""HTTP hardening shared by every route: bounds, body limits, errors, headers, OpenAPI."""

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse

from app.http import openapi
from app.http.context import RequestContextMiddleware
from app.http.errors import request_validation_error
from app.http.limits import BodyLimitMiddleware

DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>rlhf-studio API</title>
<link rel="stylesheet" href="/static/vendor/swagger-ui/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/static/js/api_docs.js"></script>
</body>
</html>
"""


def install(app: FastAPI) -> None:
    """Add the body limits (after the app's own middleware, so they wrap them), handlers and
    /docs. `wrap` then adds the request context around everything."""
    app.add_middleware(BodyLimitMiddleware)
    app.add_exception_handler(RequestValidationError, request_validation_error)
    openapi.install(app)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """The API explorer (Swagger UI); its start-up script is a static file (no inline JS)."""
        return HTMLResponse(DOCS_PAGE)


def wrap(app: FastAPI) -> None:
    """Add the request id and security headers as the outermost middleware, so every answer
    carries them: the 503 of back-pressure and the 413 of the body limit as much as a route's."""
    app.add_middleware(RequestContextMiddleware)
