"""How ``rag serve`` runs the blocking pipeline: admission gates that answer "full" at once instead of
piling requests up, and a job that runs ``Pipeline.stream`` in a worker thread and hands its events to
the event loop through a queue, stopping when the client goes away or the request times out."""
from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor

# A first guess of how long a gated request holds its slot, until requests have been timed: a local
# answer took 8-22 s, mean 13 s, on the shared 2 cores at load 6-7 (docs/benchmarks.md, section 5).
FIRST_HOLD_S = 12.0
SMOOTHING = 0.3  # weight of the newest request in the running mean of hold times


class Full(Exception):
    """A gate is full; ``retry_after`` is the whole seconds after which a slot is likely free."""

    def __init__(self, what: str, retry_after: int):
        super().__init__(what)
        self.retry_after = retry_after


class Timeout(Exception):
    """The request ran past its time limit."""


class Gate:
    """At most ``limit`` holders at once; ``enter`` never waits, it raises ``Full``."""

    def __init__(self, name: str, limit: int, first_hold_s: float = FIRST_HOLD_S):
        self.name, self.limit = name, max(0, limit)
        self.holders = 0
        self.mean_hold_s = first_hold_s
        self._lock = threading.Lock()

    def enter(self) -> "Ticket":
        with self._lock:
            if self.holders >= self.limit:
                raise Full(self.name, self.retry_after())
            self.holders += 1
        return Ticket(self)

    def leave(self, held_s: float) -> None:
        with self._lock:
            self.holders -= 1
            self.mean_hold_s += SMOOTHING * (held_s - self.mean_hold_s)

    def retry_after(self) -> int:
        return max(1, math.ceil(self.mean_hold_s))

    def status(self) -> dict:
        return {"in_flight": self.holders, "limit": self.limit, "mean_seconds": round(self.mean_hold_s, 2)}


class Ticket:
    """One place in a gate, given back once (by the thread that did the work)."""

    def __init__(self, gate: Gate):
        self.gate, self.start, self._left = gate, time.perf_counter(), False

    def leave(self) -> None:
        if not self._left:
            self._left = True
            self.gate.leave(time.perf_counter() - self.start)


def admit(gates: list[Gate]) -> list[Ticket]:
    """A ticket of every gate, or none: ``Full`` from the first gate that is full."""
    tickets: list[Ticket] = []
    try:
        for gate in gates:
            tickets.append(gate.enter())
    except Full:
        for ticket in tickets:
            ticket.leave()
        raise
    return tickets


class Jobs:
    """The jobs whose workers are running: how many, how many of them were told to stop (their client went
    or their time ran out) and have not yet, and how many stopped before their end."""

    def __init__(self) -> None:
        self.running: set = set()
        self.stopped_early = 0
        self._lock = threading.Lock()

    def status(self) -> dict:
        with self._lock:
            running = list(self.running)
            stopped = self.stopped_early
        return {"running": len(running), "cancelling": sum(j.cancel.is_set() for j in running),
                "stopped_early": stopped}

    def add(self, job: "Job") -> None:
        with self._lock:
            self.running.add(job)

    def end(self, job: "Job", early: bool) -> None:
        with self._lock:
            self.running.discard(job)
            self.stopped_early += early


class Job:
    """``work()`` (an iterator of events) run in ``executor``; ``events()`` reads them on the event loop.

    The worker checks ``cancel`` after every event and closes the iterator when it is set (the local
    model's stream closes with it), and gives back the tickets when it stops, so a slot is free only when
    its work has really ended.
    """

    def __init__(self, work: Callable[[], Iterator[tuple[str, object]]], tickets: list[Ticket],
                 jobs: Jobs | None = None):
        self.work, self.tickets, self.jobs = work, tickets, jobs or Jobs()
        self.cancel = threading.Event()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.loop = asyncio.get_running_loop()

    def start(self, executor: Executor) -> "Job":
        self.jobs.add(self)
        try:
            executor.submit(self._run)
        except RuntimeError:  # the executor is shut down: the server is stopping
            self.jobs.end(self, early=False)
            self._release()
            raise
        return self

    def _put(self, event: tuple[str, object]) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancel.set()

    def _run(self) -> None:
        early = True
        try:
            if self.cancel.is_set():
                return
            events = self.work()
            try:
                for event in events:
                    self._put(event)
                    if self.cancel.is_set():
                        break
                else:
                    early = False
            finally:
                events.close()
        except Exception as error:  # noqa: BLE001 - handed to the request, which answers it as JSON
            early = False
            self._put(("error", error))
        finally:
            self._release()
            self.jobs.end(self, early)
            self._put(("done", None))

    def _release(self) -> None:
        for ticket in self.tickets:
            ticket.leave()

    async def events(self, deadline: float) -> AsyncIterator[tuple[str, object]]:
        """The worker's events until it is done; ``Timeout`` at ``deadline`` (``time.monotonic``)."""
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise asyncio.TimeoutError
                kind, payload = await asyncio.wait_for(self.queue.get(), left)
            except asyncio.TimeoutError:
                self.cancel.set()
                raise Timeout("the request took too long") from None
            if kind == "done":
                return
            yield kind, payload
