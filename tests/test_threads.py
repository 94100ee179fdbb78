"""rag.threads: a short query's one-thread setting never reaches other torch work in the process."""
from __future__ import annotations

import threading

import torch

from rag.embedding import Embedder
from rag.threads import torch_work


def test_a_short_query_runs_on_one_thread_when_alone():
    default = torch.get_num_threads()
    assert default > 1  # the tests run where torch has more than one thread, or this proves nothing
    with torch_work(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == default


def test_other_torch_work_never_sees_the_lowered_count(settings, monkeypatch):
    """Two embedders of one process: one answers short queries, the other encodes batches meanwhile, each
    from a fresh thread (as a transformers generation runs): a new thread takes torch's process-wide count
    at its first operation, so a count lowered at that moment would stay with it."""
    default = torch.get_num_threads()
    querying, batching = Embedder(settings.embedder, settings.cache_dir), Embedder(settings.embedder, settings.cache_dir)
    model = batching._load()
    real_encode, seen = model.encode, []

    def encode(*args, **kwargs):
        seen.append(torch.get_num_threads())
        vectors = real_encode(*args, **kwargs)
        seen.append(torch.get_num_threads())
        return vectors

    monkeypatch.setattr(model, "encode", encode)
    stop, queries = threading.Event(), []

    def ask_short_questions():
        while not stop.is_set():
            queries.append(querying.encode_queries(["蒙内铁路的桥梁为什么那么高？"]))

    worker = threading.Thread(target=ask_short_questions)
    worker.start()
    try:
        for _ in range(15):
            batch = threading.Thread(target=batching.encode_passages,
                                     args=(["绿色丝绸之路", "green finance", "蒙内铁路", "Karot hydropower station"],))
            batch.start()
            batch.join()
    finally:
        stop.set()
        worker.join()
    assert queries and seen and set(seen) == {default}
    assert torch.get_num_threads() == default
