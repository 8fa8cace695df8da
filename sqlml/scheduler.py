"""Runs the retrain_schedules of a DuckDB file: ``sqlml serve``'s thread and ``sqlml schedule``.

Theory of operation
-------------------
A ``Scheduler`` looks for due schedules (schedules.due) every ``poll`` seconds on a Session of its
own, and runs each due one, one at a time, on a session opened for the role that set it
(``open_as``: the gateway opens it as it would open that user's client session, with that
user's file policy; ``sqlml schedule`` runs as the operator who runs it). A run holds one of the
gateway's training slots (trainings.py) as a client's training does, so scheduled trainings count
against ``--max-concurrent-trainings``; it runs in the scheduler's thread, never in the
gateway's event loop or its clients' threads, so clients are served meanwhile.

``stop`` ends the thread cleanly: no new run starts, a run in progress is interrupted at its next
checkpoint (recorded as failed, 57014: the previous version keeps serving) and the thread is
joined. Time is the ``clock``'s (UTC): tests give one of their own.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from sqlml import errors, schedules

if TYPE_CHECKING:
    from sqlml.engine import Session

# a session for a role (None: the scheduler's own), closed when the context ends
OpenAs = Callable[[str | None], contextlib.AbstractContextManager["Session"]]


class Scheduler:
    def __init__(
        self,
        session: Session,
        open_as: OpenAs | None = None,
        clock: schedules.Clock = schedules.utc_now,
        poll: float = 1.0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.session = session  # finds the due schedules
        self.open_as = open_as  # None: every run on ``session``, as the role that set it
        self.clock, self.poll = clock, poll
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running: Session | None = None  # the session of the run in progress

    def run_due(self) -> list[dict[str, Any]]:
        """Runs every schedule due now; the rows recorded."""
        rows = []
        for job in schedules.due(self.session, self.clock()):
            if self._stop.is_set():
                break
            with self._as(job.schedule.get("role")) as session:
                self._running = session
                try:
                    row = schedules.run(session, job, self.clock)
                finally:
                    self._running = None
            rows.append(row)
            self.log(
                f"sqlml schedule: {job.ref} ({job.schedule['schedule']}) {row['status']}"
                + (f": {row['message']}" if row.get("message") else "")
            )
        return rows

    @contextlib.contextmanager
    def _as(self, role: str | None) -> Iterator[Session]:
        if self.open_as is not None:
            with self.open_as(role) as session:
                session.trainings = self.session.trainings
                yield session
            return
        self.session.store.role = role
        yield self.session

    def run_until(self, stopping: Callable[[], bool]) -> None:
        """Runs due schedules every ``poll`` seconds until ``stopping()`` or ``stop``."""
        while not self._stop.is_set() and not stopping():
            try:
                self.run_due()
            except errors.Error as e:  # (the store is unreadable now: try again later)
                self.log(f"sqlml schedule: {e.sqlstate}: {e.message}")
            self._stop.wait(self.poll)

    def start(self) -> None:
        """Runs in a thread of its own until ``stop``."""
        self._thread = threading.Thread(
            target=self.run_until, args=(lambda: False,), name="sqlml-scheduler", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """No new run; the one in progress interrupted; the thread joined."""
        self._stop.set()
        running = self._running
        if running is not None:
            running.engine.interrupt()
        if self._thread is not None:
            self._thread.join(timeout)
