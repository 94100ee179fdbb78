"""torch's thread count is one setting for the whole process; this module is the only place it changes.

One short query runs faster on one thread than on two shared cores (measured p50 170–950 ms against
32 ms under load), so the embedder asks for one thread while it encodes a question. The count may drop
only while no other torch work runs, and other torch work (a batch encode, a transformers generation,
a second embedder) waits for the short query to end: nobody computes under a count it did not ask for.
Every torch computation of the package runs inside ``torch_work``.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_state = threading.Condition()
_active = 0  # torch computations running now
_waiting = 0  # computations waiting for a lowered count to end
_lowered_from: int | None = None  # the process's count while a lowered section runs; None: not lowered


@contextlib.contextmanager
def torch_work(threads: int | None = None) -> Iterator[None]:
    """Run torch work. With ``threads``, run on that many threads if nothing else runs or waits;
    otherwise (and without ``threads``) run on the process's own count, after any lowered section ends."""
    import torch

    global _active, _waiting, _lowered_from
    with _state:
        if threads is not None and _active == 0 and _waiting == 0:
            _lowered_from = torch.get_num_threads()
            torch.set_num_threads(threads)
        else:
            _waiting += 1
            _state.wait_for(lambda: _lowered_from is None)
            _waiting -= 1
        _active += 1
    try:
        yield
    finally:
        with _state:
            _active -= 1
            if _active == 0 and _lowered_from is not None:
                torch.set_num_threads(_lowered_from)
                _lowered_from = None
            _state.notify_all()
