"""Response header values built from user data."""

import re
from urllib.parse import quote


def attachment(filename: str) -> str:
    """A Content-Disposition for a download: an ASCII fallback plus RFC 5987 `filename*`.

    Any name works (non-Latin-1 letters, quotes, control characters): the plain `filename`
    keeps only safe ASCII, and `filename*` carries the exact name, percent-encoded UTF-8.
    """
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", filename).strip() or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
