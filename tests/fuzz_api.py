"""A bounded, seeded schemathesis run over every operation of the OpenAPI description.

Each operation is fuzzed with an admin's and a labeler's token, with data that fits the schema
and data that does not. Every response must be free of server errors and must match what the
schema promises (status code, content type, body). `fuzz()` returns the tally; the suite runs a
small one, `RLHF_FUZZ_EXAMPLES=40 pytest tests/test_fuzz.py -s` a larger one.
"""

import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass
class Tally:
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)
    """'METHOD path as role: check' -> the first failure's message, with a curl line."""

    def summary(self) -> str:
        lines = [f"{self.requests} requests; statuses {dict(sorted(self.statuses.items()))}"]
        lines += [f"FAIL {key}\n{message}" for key, message in self.failures.items()]
        return "\n".join(lines)


def fuzz(
    app: Any,
    tokens: dict[str, str],
    *,
    examples: int,
    seed_value: int = 0,
    repair: Callable[[], None] | None = None,
    skip: Callable[[str, str], bool] = lambda method, path: False,
) -> Tally:
    """Fuzz every operation `examples` times per token and generation mode; returns the tally.

    `repair` runs after calls that may lock the fuzzer out (revoking tokens, changing users).
    """
    from schemathesis.python import asgi

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    tally = Tally()
    with asgi.get_client(app) as client:
        for result in schema.get_all_operations():
            operation = result.ok()
            if skip(operation.method.upper(), operation.path):
                continue
            for role, token in tokens.items():
                headers = {"Authorization": f"Bearer {token}"}
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    _fuzz_operation(
                        operation, client, headers, role, mode, examples, seed_value, tally, repair
                    )
    return tally


def _fuzz_operation(
    operation: Any,
    client: Any,
    headers: dict[str, str],
    role: str,
    mode: GenerationMode,
    examples: int,
    seed_value: int,
    tally: Tally,
    repair: Callable[[], None] | None,
) -> None:
    label = f"{operation.method.upper()} {operation.path} as {role}"
    risky = operation.method.upper() in {"DELETE", "PATCH", "POST"} and (
        "token" in operation.path or "users" in operation.path
    )

    @seed(seed_value)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=False,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        tally.requests += 1
        try:
            response = case.call(session=client, headers=headers)
        except Exception as exc:  # noqa: BLE001 — the app raised instead of answering
            key = f"{label}: raised {type(exc).__name__}"
            tally.failures.setdefault(key, f"{exc}\n{case.as_curl_command()}"[:3000])
            return
        tally.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except BaseExceptionGroup as group:  # every failure is collected, none stops the run
            for exc in group.exceptions:
                key = f"{label}: {type(exc).__name__}"
                if key not in tally.failures:
                    tally.failures[key] = f"{exc}\n{case.as_curl_command()}"[:3000]
        except AssertionError as exc:
            key = f"{label}: {type(exc).__name__}"
            if key not in tally.failures:
                tally.failures[key] = f"{exc}\n{case.as_curl_command()}"[:3000]
        if risky and repair is not None:
            repair()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            run()
        except Unsatisfiable:
            pass  # nothing to generate in this mode (e.g. no parameters to make invalid)
        except Exception as exc:  # noqa: BLE001 — generation errors are failures too
            tally.failures.setdefault(f"{label}: generation", f"{type(exc).__name__}: {exc}"[:3000])
