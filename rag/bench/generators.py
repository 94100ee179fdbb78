"""Section 2 of ``rag bench``: generator efficiency. Decode tokens/s of the shipped GGUF against the
memory-bandwidth limit, llama.cpp with 1 and 2 threads, and (``--generators``, slow) transformers' GGUF
loader in fp32 / bfloat16 / torch.compile, with greedy answers compared across backends."""
from __future__ import annotations

import gc
import inspect
import threading
import time
from pathlib import Path

import numpy as np

from rag import config
from rag.bench.common import BenchOptions, fmt, load_average, ms_since, percentiles, rss_bytes, say, usable_cores
from rag.bench.stages import messages_for

TRANSFORMERS_TIMEOUT_S = 900  # one transformers configuration; torch.compile on 2 cores can take longer


def memory_bandwidth(size_mb: int = 256, repeats: int = 5) -> dict:
    """Copy bandwidth (bytes read + written per second) of numpy, one thread and one per core."""
    n = size_mb * 2**20 // 8
    src = np.ones(n, dtype=np.float64)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # touch the pages

    def best(fn) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 2 * src.nbytes / min(times)

    single = best(lambda: np.copyto(dst, src))
    workers = usable_cores()
    bounds = np.linspace(0, n, workers + 1).astype(int)

    def parallel():
        threads = [threading.Thread(target=np.copyto, args=(dst[a:b], src[a:b])) for a, b in zip(bounds, bounds[1:])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    multi = best(parallel) if workers > 1 else single
    del src, dst
    return {"array_mb": size_mb, "single_thread_gbs": single / 1e9, "threads": workers,
            "all_threads_gbs": multi / 1e9, "gbs": max(single, multi) / 1e9}


def _prompt_messages(pipeline, questions: list[dict], count: int) -> list[tuple[str, list[dict]]]:
    """The pipeline's own prompts for the first answerable questions (evidence selected as in the app)."""
    prompts = []
    for question in questions:
        if len(prompts) >= count:
            break
        result = pipeline.retriever.search(question["question"], pipeline.settings.top_k)
        selection = pipeline.selector.select(result)
        if not pipeline.answerable(selection):
            continue
        messages = messages_for(pipeline, question["question"], result.language)
        prompts.append((question.get("id") or question["question"][:20], messages))
    return prompts


def _llama_run(gguf: Path, threads: int, prompts, max_new: int) -> dict:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    start = time.perf_counter()
    llm = Llama(model_path=str(gguf), n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False)
    load_s = ms_since(start) / 1000
    eos = llm.token_eos()
    formatter = Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"],
                                    eos_token=llm._model.token_get_text(eos),
                                    bos_token=llm._model.token_get_text(llm.token_bos()))
    stops = {eos, *llm.tokenize(b"<|im_end|>", add_bos=False, special=True)}
    runs = []
    for name, messages in prompts:
        tokens = llm.tokenize(formatter(messages=messages).prompt.encode("utf-8"), add_bos=False, special=True)
        llm.reset()  # a full prefill each time: comparable across thread counts
        out, times = [], []
        start = time.perf_counter()
        for token in llm.generate(tokens, temp=0.0, top_k=1, repeat_penalty=1.0):
            times.append(time.perf_counter())
            if token in stops:
                break
            out.append(token)
            if len(out) >= max_new:
                break
        runs.append({"prompt": name, "prompt_tokens": len(tokens), "prefill_ms": (times[0] - start) * 1000,
                     "new_tokens": len(times), "decode_tps": (len(times) - 1) / (times[-1] - times[0])
                     if len(times) > 1 else None, "cut": len(out) >= max_new,
                     "text": llm.detokenize(out).decode("utf-8", errors="replace"), "token_ids": out})
    del llm
    gc.collect()
    return {"backend": "llama.cpp", "config": f"Q4_K_M, {threads} thread{'s' * (threads > 1)}", "threads": threads,
            "load_s": load_s, "runs": runs}


def _transformers_run(gguf: Path, dtype_name: str, prompts, max_new: int, compile_model: bool = False) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    label = f"GGUF dequantised to {dtype_name}" + (", torch.compile" if compile_model else "")
    rss_before = rss_bytes()
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=dtype)
    model.eval()
    load_s = ms_since(start) / 1000
    weights_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    result = {"backend": "transformers", "config": label, "threads": torch.get_num_threads(), "load_s": load_s,
              "weights_bytes": weights_bytes, "rss_growth_mb": (rss_bytes() - rss_before) / 2**20, "runs": []}
    forward = model
    if compile_model:
        start = time.perf_counter()
        forward = torch.compile(model, dynamic=True)
        result["compile_note"] = "torch.compile(model, dynamic=True); first call includes compilation"
    stops = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
    parameters = inspect.signature(model.forward).parameters
    cache_arg = "cache" if "cache" in parameters else "past_key_values"  # renamed in transformers 5.x
    extra = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}  # last position only, as llama.cpp

    def cache_of(output):
        return output.cache if getattr(output, "cache", None) is not None else output.past_key_values

    try:
        for index, (name, messages) in enumerate(prompts):
            inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                   return_dict=True)
            out, times = [], []
            with torch.inference_mode():
                begin = time.perf_counter()
                output = forward(**inputs, use_cache=True, **extra)
                cache, token = cache_of(output), output.logits[:, -1].argmax(-1, keepdim=True)
                times.append(time.perf_counter())
                while int(token) not in stops and len(out) < max_new:
                    out.append(int(token))
                    output = forward(input_ids=token, use_cache=True, **{cache_arg: cache}, **extra)
                    cache, token = cache_of(output), output.logits[:, -1].argmax(-1, keepdim=True)
                    times.append(time.perf_counter())
            if compile_model and index == 0:
                result["compile_s"] = (times[0] - start) if len(times) else None
            result["runs"].append({
                "prompt": name, "prompt_tokens": int(inputs["input_ids"].shape[1]),
                "prefill_ms": (times[0] - begin) * 1000, "new_tokens": len(times),
                "decode_tps": (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else None,
                "cut": len(out) >= max_new, "text": tokenizer.decode(out, skip_special_tokens=True), "token_ids": out})
    except Exception as error:  # noqa: BLE001 - e.g. torch.compile without a C compiler
        result["error"] = f"{type(error).__name__}: {str(error)[:300]}"
    del model, forward
    gc.collect()
    return result


def _child(queue, function, args) -> None:
    try:
        queue.put(function(*args))
    except BaseException as error:  # noqa: BLE001 - reported by the parent
        queue.put({"error": f"{type(error).__name__}: {str(error)[:300]}"})


def in_subprocess(function, args: tuple, timeout_s: float) -> dict:
    """``function(*args)`` in a fresh process: its memory (a 7 GB dequantised model) goes back when it ends,
    and a backend that takes too long (torch.compile on 2 cores) is stopped and reported, not waited for."""
    import multiprocessing
    import queue as queues

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_child, args=(results, function, args), daemon=True)
    process.start()
    try:
        return results.get(timeout=timeout_s)
    except queues.Empty:
        return {"error": f"did not finish within {timeout_s:.0f} s"
                if process.is_alive() else f"the process ended with code {process.exitcode}"}
    finally:
        if process.is_alive():
            process.terminate()
        process.join(timeout=30)


def bench_generators(settings: config.Settings, options: BenchOptions, pipeline, questions) -> dict:
    from rag.llm import SHIPPED_SIZE, GeneratorUnavailable, shipped_gguf_path

    section: dict = {"load_average_before": load_average()}
    section["bandwidth"] = bw = memory_bandwidth(32 if options.quick else 256, 3 if options.quick else 5)
    say(f"memory bandwidth (numpy copy, read + write): {bw['single_thread_gbs']:.1f} GB/s one thread, "
        f"{bw['all_threads_gbs']:.1f} GB/s {bw['threads']} threads")
    try:
        gguf = shipped_gguf_path(settings.cache_dir)
        size = gguf.stat().st_size
    except GeneratorUnavailable as error:
        gguf, size = None, SHIPPED_SIZE
        section["error"] = str(error)
    section["gguf_bytes"] = size
    section["bound_tps"] = bw["gbs"] * 1e9 / size
    say(f"decode limit of the shipped GGUF: {bw['gbs']:.1f} GB/s / {size / 1e9:.2f} GB = "
        f"{section['bound_tps']:.1f} tokens/s (every weight read once per token)")
    section["backends"] = []
    if gguf is None or options.quick:
        section["skipped"] = "quick run" if options.quick else section.get("error")
        return section
    prompts = _prompt_messages(pipeline, questions, 3)
    section["max_new_tokens"] = MAX_NEW_TOKENS
    section["prompts"] = [name for name, _ in prompts]
    threads = sorted({1, 2, usable_cores()})
    runs = _run_backends(gguf, size, prompts, threads, options.generators, bw["gbs"])
    section.update(_compare_backends(runs, size, bw["gbs"], max(threads)))
    section["load_average_after"] = load_average()
    return section


MAX_NEW_TOKENS = 48  # enough for a short answer sentence; every backend decodes the same prompts
# transformers decodes ~10x slower than llama.cpp here: fewer, shorter answers keep the section in minutes
SLOW_MAX_NEW_TOKENS, SLOW_PROMPTS = 24, 2


def _run_backends(gguf: Path, size: int, prompts, threads: list[int], transformers: bool, gbs: float) -> list[dict]:
    """llama.cpp with each thread count, then (``transformers``) each transformers configuration."""
    runs = []
    for count in threads:
        try:
            runs.append(_llama_run(gguf, count, prompts, MAX_NEW_TOKENS))
        except ImportError as error:
            runs.append({"backend": "llama.cpp", "config": f"{count} threads", "error": str(error)})
            break
        _report_backend(runs[-1], gbs * 1e9 / size, size)
    if not transformers:
        return runs
    for dtype_name, compile_model in (("fp32", False), ("bf16", False), ("fp32", True)):
        run = in_subprocess(_transformers_run, (gguf, dtype_name, prompts[:SLOW_PROMPTS], SLOW_MAX_NEW_TOKENS,
                                                compile_model), TRANSFORMERS_TIMEOUT_S)
        run.setdefault("backend", "transformers")
        run.setdefault("config", f"GGUF dequantised to {dtype_name}" + (", torch.compile" if compile_model else ""))
        runs.append(run)
        _report_backend(run, gbs * 1e9 / run.get("weights_bytes", size), run.get("weights_bytes", size))
        if "ImportError" in run.get("error", "") or "ModuleNotFoundError" in run.get("error", ""):
            break
    return runs


def _compare_backends(runs: list[dict], size: int, gbs: float, most_threads: int) -> dict:
    """Speeds against the bandwidth limit, answers against the first backend that ran, the fastest."""
    reference = next((r for r in runs if r.get("runs")), None)
    for run in runs:
        run["decode_tps"] = percentiles(x["decode_tps"] for x in run.get("runs", []))["p50"]
        run["prefill_tps"] = percentiles(x["prompt_tokens"] / x["prefill_ms"] * 1000
                                         for x in run.get("runs", []))["p50"]
        run["bound_tps"] = gbs * 1e9 / run.get("weights_bytes", size)
        run["bound_ratio"] = run["decode_tps"] / run["bound_tps"] if run["decode_tps"] else None
        if reference is not None and run.get("runs"):
            run["same_answers"] = [same_answer(a, b) for a, b in zip(reference["runs"], run["runs"])]
    out: dict = {"backends": runs}
    measured = [r for r in runs if r.get("decode_tps") and not r.get("error")]
    agreeing = [r for r in measured if all(r.get("same_answers") or [False])]
    if measured:
        best = max(agreeing or measured, key=lambda r: r["decode_tps"])
        out["fastest"] = f"{best['backend']} ({best['config']})" + ("" if agreeing else ", answers differ")
        out["ratio"] = next((r["bound_ratio"] for r in runs if r["backend"] == "llama.cpp"
                             and r.get("threads") == most_threads and r.get("bound_ratio")), best["bound_ratio"])
    return out


def same_answer(a: dict, b: dict) -> bool:
    """Two greedy runs agree when their tokens match as far as both went (one may have a lower token cap)."""
    n = min(len(a["token_ids"]), len(b["token_ids"]))
    if a["token_ids"][:n] != b["token_ids"][:n]:
        return a["text"].strip() == b["text"].strip()  # same text, tokenised differently
    return len(a["token_ids"]) == len(b["token_ids"]) or (a["cut"] if len(a["token_ids"]) == n else b["cut"])


def _report_backend(run: dict, bound: float, weights: int) -> None:
    if run.get("error"):
        say(f"  {run['backend']} {run['config']}: failed ({run['error']})")
    if not run.get("runs"):
        return
    decode = percentiles(x["decode_tps"] for x in run["runs"])["p50"]
    prefill = percentiles(x["prefill_ms"] for x in run["runs"])["p50"]
    say(f"  {run['backend']} {run['config']}: load {run['load_s']:.1f} s, prefill p50 {prefill:.0f} ms, decode "
         f"{fmt(decode)} tokens/s = {fmt(decode / bound if decode else None, 2)} of the "
         f"{bound:.1f} tokens/s limit for {weights / 1e9:.2f} GB of weights")


