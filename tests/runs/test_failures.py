"""A run's cause in one line, from how its trainer ended."""

from app.runs.failures import describe_exit, retryable
from trainer import EXIT_UNAVAILABLE, EXIT_USAGE

CAUSE = "the judge endpoint http://127.0.0.1:9/v1 failed 5 times: connection refused"
TAIL = f"judged 40 of 100 items\nerror: {CAUSE}\n"


def test_a_service_that_kept_failing_is_named_and_a_retry_is_offered() -> None:
    cause = describe_exit(EXIT_UNAVAILABLE, TAIL)
    assert cause == CAUSE
    assert retryable("failed", EXIT_UNAVAILABLE, cause + "\n" + TAIL)


def test_a_refused_config_is_named_and_not_retried() -> None:
    cause = describe_exit(EXIT_USAGE, "error: endpoint_model: set it with endpoint\n")
    assert cause == "endpoint_model: set it with endpoint"
    assert not retryable("failed", EXIT_USAGE, cause)


def test_an_exit_without_an_error_line_says_its_status() -> None:
    assert describe_exit(EXIT_UNAVAILABLE, "no line\n") == "the trainer exited with status 69"


def test_the_lines_of_a_ray_worker_are_read_without_the_prefix_ray_puts_before_them() -> None:
    tail = (
        "(RayTrainWorker pid=812) error: config key 'train_file' is required\n"
        "(RayTrainWorker pid=840, ip=10.0.0.7) error: config key 'train_file' is required\n"
    )
    assert describe_exit(EXIT_USAGE, tail) == "config key 'train_file' is required"
    crashed = (
        "(TrainController pid=9) safetensors_rust.SafetensorError: invalid header length\n"
        "(RayTrainWorker pid=840) [2026-01-01 10:00:00] checkpoint saved\n"
    )
    assert describe_exit(1, crashed) == "safetensors_rust.SafetensorError: invalid header length"
