"""An axe-core accessibility audit of the page a browser shows (axe-core vendored in static/)."""

from typing import Any


def violations(page: Any) -> list[str]:
    """Every axe-core violation on the page, as 'rule (impact): where' lines."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # By URL from the app's own static files: the CSP allows no inline script.
        page.add_script_tag(url="/static/vendor/axe-core/axe.min.js")
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => `${v.id} (${v.impact}): `"
        " + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))"
    )
    return list(found)
