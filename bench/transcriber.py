"""In-process Transcriber benchmark: audio files in, text out, one BlockingTranscriber.

    python bench/transcriber.py --clip-s 30 --n-files 8 --concurrency 8      # tiny checkpoint
    python bench/transcriber.py --model DIR --speech-tokenizer DIR ...         # a real checkpoint
    python bench/transcriber.py ... --profile .data/bench-profile.txt          # + py-spy profile summary

Records (bench "transcriber", system "ours"):
* scenario "throughput": --n-files files at --concurrency threads (bulk priority): RTFx,
  requests/s, p50/p95, and the share of request time in the front end vs the LLM
  (from TranscriptionResult.timings; both include their queue waits).
* scenario "idle": --latency-requests 10-s clips, one at a time (interactive priority).
* scenario "under_load": the same 10-s clips, one at a time, while the throughput set
  runs again in the background.

The same measurement is what bench/service.py compares the service against
(``measure_inprocess``), so "service overhead" compares like with like.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.common import (  # noqa: E402
    WARMUP_FILES,
    PySpy,
    ResourceMeter,
    add_common_args,
    emit,
    ensure_audio_set,
    jsonl_path,
    add_checkpoint_args,
    make_record,
    select_checkpoint,
    summarize_collapsed,
)

BULK, INTERACTIVE = 1, 0     # Transcriber priorities as the worker uses them (lower = sooner)


@dataclass
class Run:
    """Per-request latencies and timings of one measured set."""
    wall_s: float
    latencies_s: list[float]
    timings: list[dict[str, float]] = field(default_factory=list)

    def shares(self) -> dict[str, float | None]:
        fe = sum(t.get("frontend_s", 0.0) for t in self.timings)
        llm = sum(t.get("engine_s", 0.0) for t in self.timings)
        dec = sum(t.get("decode_s", 0.0) for t in self.timings)
        tot = fe + llm + dec
        return {"frontend_share": fe / tot if tot else None, "llm_share": llm / tot if tot else None,
                "decode_share": dec / tot if tot else None}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_args(ap)
    ap.add_argument("--clip-s", type=float, default=30.0)
    ap.add_argument("--n-files", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight (threads)")
    ap.add_argument("--latency-requests", type=int, default=3, help="10-s clips for idle/under-load latency (0: skip)")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--stop-on-eos", action="store_true", help="default: ignore_eos, exactly --max-tokens per chunk")
    ap.add_argument("--profile", type=Path,
                    help="py-spy the throughput run (all threads, vLLM child processes too); raw stacks go here")
    add_common_args(ap)
    return ap.parse_args(argv)


def options_for(max_tokens: int, ignore_eos: bool) -> Any:
    from kimi_model.transcriber import TranscriptionOptions
    return TranscriptionOptions(max_tokens=max_tokens, ignore_eos=ignore_eos)


def open_transcriber(model_dir: Path, glm_dir: Path | None, concurrency: int) -> Any:
    """The Transcriber exactly as the worker builds it (env KIMI_* honoured), with room
    for ``concurrency`` sequences."""
    from kimi_model.transcriber import BlockingTranscriber, TranscriberConfig

    cfg = TranscriberConfig.from_env(model_dir=str(model_dir))
    if glm_dir is not None:
        cfg.speech_tokenizer_dir = str(glm_dir)
    cfg.max_num_seqs = max(cfg.max_num_seqs, concurrency)
    return BlockingTranscriber(cfg)


def measure_inprocess(bt: Any, files: list[Path], concurrency: int, options: Any, priority: int = BULK) -> Run:
    """All files through ``bt`` with ``concurrency`` threads; wall from first submit to last result."""
    def one(p: Path) -> tuple[float, dict[str, float]]:
        t = time.perf_counter()
        r = bt.transcribe(str(p), options, priority=priority)
        return time.perf_counter() - t, r.timings

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max(1, concurrency)) as ex:
        res = list(ex.map(one, files))
    return Run(time.perf_counter() - t0, [r[0] for r in res], [r[1] for r in res])


def measure_sequential(bt: Any, files: list[Path], options: Any) -> Run:
    lat, tim = [], []
    for p in files:
        t = time.perf_counter()
        r = bt.transcribe(str(p), options, priority=INTERACTIVE)
        lat.append(time.perf_counter() - t)
        tim.append(r.timings)
    return Run(sum(lat), lat, tim)


def profiled(fn: Any, out: Path | None) -> tuple[Any, dict[str, float] | None]:
    """Run fn(); with ``out``, under py-spy (every thread here and in vLLM's EngineCore /
    worker processes), and return the share of samples per category (bench.common.PROFILE_RULES).
    Sampling slows the run: a profiled run's own numbers are not recorded as results."""
    if out is None:
        return fn(), None
    with PySpy(out):
        result = fn()
    return result, summarize_collapsed(out, os.getpid())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model_dir, glm_dir, shape = select_checkpoint(args)
    # Distinct audio for every phase (measured, background load, warm-up; idle vs loaded
    # probes), so vLLM's prefix cache never serves a repeat.
    n, k = args.n_files, args.latency_requests
    w = min(n, WARMUP_FILES)
    audio_all = ensure_audio_set(args.audio, args.clip_s, (3 if args.profile else 2) * n + w)
    audio, load, warm = audio_all.subset(0, n), list(audio_all.files[n:2 * n]), list(audio_all.files[2 * n:2 * n + w])
    profile_files = list(audio_all.files[2 * n + w:])
    probes = ensure_audio_set(args.audio, 10.0, 2 * k) if k else None
    opts = options_for(args.max_tokens, not args.stop_on_eos)
    path = jsonl_path(args.jsonl)
    common = dict(model_shape=shape, max_tokens=args.max_tokens, ignore_eos=not args.stop_on_eos, note=args.note)

    bt = open_transcriber(model_dir, glm_dir, args.concurrency)
    try:
        measure_inprocess(bt, warm, args.concurrency, opts)      # warm-up at batch size: compile, allocate
        if args.profile is not None:
            _, shares = profiled(lambda: measure_inprocess(bt, profile_files, args.concurrency, opts), args.profile)
            print(json.dumps({"profile": str(args.profile), "sample_shares": shares}), file=sys.stderr, flush=True)
            common["profile_sample_shares"] = shares
        meter = ResourceMeter().start()
        run = measure_inprocess(bt, list(audio.files), args.concurrency, opts)
        res = meter.stop()
        emit(make_record("transcriber", "ours", clip_s=args.clip_s, n_files=len(audio.files), wall_s=run.wall_s,
                         latencies_s=run.latencies_s, audio_set=audio.description, scenario="throughput",
                         concurrency=args.concurrency, **run.shares(), **res, **common), path)
        if probes is None:
            return 0
        idle = measure_sequential(bt, list(probes.files[:k]), opts)
        emit(make_record("transcriber", "ours", clip_s=10.0, n_files=k, wall_s=idle.wall_s,
                         latencies_s=idle.latencies_s, audio_set=probes.subset(0, k).description, scenario="idle",
                         concurrency=1, **idle.shares(), **common), path)
        background: dict[str, Run] = {}
        th = threading.Thread(target=lambda: background.update(
            run=measure_inprocess(bt, load, args.concurrency, opts)), daemon=True)
        th.start()
        time.sleep(0.2)   # let the load reach the engine first
        loaded = measure_sequential(bt, list(probes.files[k:]), opts)
        th.join()
        emit(make_record("transcriber", "ours", clip_s=10.0, n_files=k, wall_s=loaded.wall_s,
                         latencies_s=loaded.latencies_s, audio_set=probes.subset(k, 2 * k).description,
                         scenario="under_load", concurrency=1, load=f"{n} other {args.clip_s:g}-s files at concurrency "
                         f"{args.concurrency} (bulk priority)", background_wall_s=background["run"].wall_s,
                         **loaded.shares(), **common), path)
    finally:
        bt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
