"""How many trainings a gateway runs at once (``sqlml serve --max-concurrent-trainings N``).

Theory of operation
-------------------
A training (CREATE MODEL with a query, ALTER MODEL ... RETRAIN, and a scheduled run, which is a
RETRAIN) holds one of the gateway's N slots from before it reads its rows until it has stored
its version. One beyond the limit *waits* for a slot, with a NOTICE that it is queued, while
every other statement of every client runs as always; it is cancelled as any statement is
(the client's cancel, ``--statement-timeout``: 57014), and with ``--training-queue-timeout S``
it gives up after S seconds with 53400 (configuration_limit_exceeded) and stores nothing.

Why wait rather than refuse: a nightly job's CREATE MODEL that meets a busy gateway should run
later, not fail; a client that would rather fail sets the queue timeout (or its statement
timeout). Why the default is half the cores (at least 1): a training is not one thread: DuckDB
reads the rows on every core and NumPy's BLAS fits on several, and each holds its rows in
memory, so two trainings per core only slow each other down and double the peak memory.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator

from sqlml import errors

_POLL = 0.1  # seconds between checks for a cancel while queued


def default_limit() -> int:
    return max(1, (os.cpu_count() or 1) // 2)


class Slots:
    """A gateway's training slots; shared by its client sessions and its scheduler."""

    def __init__(self, limit: int, queue_timeout: float | None = None) -> None:
        if limit < 1:
            raise errors.InvalidParameterValue(
                f"--max-concurrent-trainings must be at least 1, not {limit}"
            )
        self.limit, self.queue_timeout = limit, queue_timeout
        self._free = threading.Semaphore(limit)
        self._lock = threading.Lock()
        self.running = 0  # trainings holding a slot now
        self.queued = 0  # trainings waiting for one

    @contextlib.contextmanager
    def slot(
        self, what: str, say: Callable[[str], None], checkpoint: Callable[[], None]
    ) -> Iterator[None]:
        """Held around one training (``what``: its statement, for the NOTICE)."""
        if not self._free.acquire(blocking=False):
            self._wait(what, say, checkpoint)
        with self._lock:
            self.running += 1
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1
            self._free.release()

    def _wait(self, what: str, say: Callable[[str], None], checkpoint: Callable[[], None]) -> None:
        with self._lock:
            self.queued += 1
            ahead = self.queued - 1
        try:
            say(
                f"{what} is queued: {self.limit} training(s) run already (sqlml serve"
                f" --max-concurrent-trainings {self.limit}), {ahead} more wait;"
                " it starts when one ends"
            )
            began = time.monotonic()
            while not self._free.acquire(timeout=_POLL):
                checkpoint()  # (57014: cancelled, or the statement timeout)
                waited = time.monotonic() - began
                if self.queue_timeout is not None and waited >= self.queue_timeout:
                    raise errors.from_sqlstate(
                        "53400",
                        f"{what} waited {waited:.1f} s for a training slot: {self.limit}"
                        " training(s) run already (--max-concurrent-trainings)",
                        hint="retry later; the gateway's --training-queue-timeout says how long"
                        " a training waits",
                    )
        finally:
            with self._lock:
                self.queued -= 1
