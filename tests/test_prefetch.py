"""Fetching ahead and writing behind (`app.prefetch`): order, errors and early stops."""

import threading
import time

import pytest

from app.prefetch import WriteBehind, ahead


def test_ahead_gives_every_item_in_order_while_the_consumer_works() -> None:
    produced: list[int] = []

    def items():  # type: ignore[no-untyped-def]
        for i in range(20):
            produced.append(i)
            yield i

    got = []
    for item in ahead(items()):
        got.append(item)
        if item == 0:
            deadline = time.monotonic() + 5
            while len(produced) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(produced) >= 2  # the next item was made while this one was in hand
    assert got == list(range(20))


def test_ahead_raises_the_producers_error_where_its_item_would_come() -> None:
    def items():  # type: ignore[no-untyped-def]
        yield 1
        yield 2
        raise ValueError("batch 3 failed")

    got = []
    with pytest.raises(ValueError, match="batch 3 failed"):
        for item in ahead(items()):
            got.append(item)
    assert got == [1, 2]


def test_a_consumer_that_stops_early_stops_the_producer_and_closes_its_iterator() -> None:
    closed = threading.Event()
    made = []

    def items():  # type: ignore[no-untyped-def]
        try:
            for i in range(1000):
                made.append(i)
                yield i
        finally:
            closed.set()

    stream = ahead(items())
    assert next(stream) == 0
    stream.close()
    assert closed.is_set()
    assert len(made) <= 3  # at most the item in hand, the one waiting and the one being made
    assert not any(t.name == "prefetch" and t.is_alive() for t in threading.enumerate())


def test_write_behind_writes_every_block_in_order() -> None:
    written: list[bytes] = []
    with WriteBehind(written.append) as behind:
        for i in range(50):
            behind.write(b"%d\n" % i)
    assert written == [b"%d\n" % i for i in range(50)]


def test_write_behind_raises_the_writers_error() -> None:
    def fail(block: bytes) -> None:
        raise OSError("disk full")

    behind = WriteBehind(fail)
    behind.write(b"x")
    with pytest.raises(OSError, match="disk full"):
        for _ in range(10):  # the error reaches a later write, or the close
            behind.write(b"y")
        behind.close()
