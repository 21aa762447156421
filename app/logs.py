"""The web server's own log: the `rlhf` loggers, the version it names, one line per request.

`rlhf serve` runs uvicorn with its access log off: the request context middleware
(app/http/context.py) writes the one access line per request, with the request id uvicorn does
not know. Each web process says when it starts and stops (pid, version), so a restarted process
shows in the log.
"""

import logging
from importlib import metadata

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"

access = logging.getLogger("rlhf.access")
server = logging.getLogger("rlhf.server")


def version() -> str:
    """The installed rlhf-studio's version ("unknown" when run from a bare checkout)."""
    try:
        return metadata.version("rlhf-studio")
    except metadata.PackageNotFoundError:
        return "unknown"


def configure() -> None:
    """Let the `rlhf` loggers' INFO lines reach stderr. Where logging is configured already (a
    root handler, e.g. uvicorn --log-config or a test's capture) they go there instead, once."""
    logger = logging.getLogger("rlhf")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
