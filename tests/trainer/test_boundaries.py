"""The trainer package stands alone: it never imports the web app."""

from __future__ import annotations

import ast
from pathlib import Path

import trainer


def test_trainer_never_imports_app() -> None:
    root = Path(trainer.__file__).parent
    files = sorted(root.rglob("*.py"))
    assert len(files) >= 8  # the scan really saw the package
    offenders = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(), filename=str(f))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{f.name}: {n}" for n in names if n == "app" or n.startswith("app.")]
    assert offenders == []
