"""Work beside the Python of a bulk command: a thread fetches the next batch (the database
works, and the driver waits for it with the GIL released, while Python builds the rows of
the batch before), and a thread writes the last block (the kernel's copy runs beside it)."""

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_END = object()
_POLL = 0.1
"""Seconds between the producer's looks at whether the consumer has gone."""


def ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """The items of `items`, in order, each produced by a thread while the consumer still
    works on the one before (at most `depth` waiting). The producer's exception is raised to
    the consumer where the item would have come. Closing this generator stops the producer
    after its current item and closes `items` (its `finally` blocks run), so a consumer that
    stops early leaves no thread or cursor behind."""
    ready: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=depth)
    gone = threading.Event()

    def put(item: object, error: BaseException | None = None) -> bool:
        while not gone.is_set():
            try:
                ready.put((item, error), timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            put(_END, error)

    producer = threading.Thread(target=produce, name="prefetch", daemon=True)
    producer.start()
    try:
        while True:
            item, error = ready.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item  # type: ignore[misc]
    finally:
        gone.set()
        producer.join()
        close = getattr(items, "close", None)
        if close is not None:
            close()


class WriteBehind(Generic[T]):
    """Writes handed to a thread: `write(block)` returns at once while the thread writes the
    blocks in order (at most `depth` waiting), so the kernel's copy of a large export runs
    beside the Python that builds the next block. The thread's error is raised by the next
    `write` or by `close`, which waits for the last block."""

    def __init__(self, write: Callable[[T], object], depth: int = 2) -> None:
        self._write = write
        self._blocks: queue.Queue[T | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="write-behind", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (block := self._blocks.get()) is not None:
            if self._error is None:
                try:
                    self._write(block)
                except BaseException as error:  # noqa: BLE001 - raised to the writer
                    self._error = error

    def write(self, block: T) -> None:
        if self._error is not None:
            raise self._error
        self._blocks.put(block)

    def close(self) -> None:
        self._blocks.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> "WriteBehind[T]":
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self.close()
        else:  # the body's error goes on; the thread's, if any, is a consequence
            self._blocks.put(None)
            self._thread.join()
