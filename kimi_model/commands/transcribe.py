"""`kimi-asr transcribe`: transcribe audio files with the vLLM engine (one engine, all
files concurrently).

    kimi-asr transcribe --model DIR [--speech-tokenizer DIR] [--instruction TEXT]
        [--max-tokens N] [--repetition-penalty P] [--temperature T] [--seed S]
        [--ignore-eos] [--format json|text|srt|vtt] [engine options] FILE...

``--format json`` (default) prints one object per file per line, in input order:
``{"file", "text", "token_ids", "duration_s"}``; ``token_ids`` are the sampled text
ids in order without the final 151667 (ids ≥ 152064 are kept there; ``text`` drops
them, spec §6). A file that fails gives ``{"file", "error": {"code", "message"}}``
on its line and the exit status is 2. vLLM's logs go to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kimi_model.commands import add_prompt_args
from kimi_model.constants import MAX_POSITIONS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("transcribe", help="transcribe audio files with Kimi-Audio on vLLM")
    add_prompt_args(p)
    p.add_argument("--max-tokens", type=int, default=None,
                   help="max text tokens per chunk (default: reference 7500 − prompt length)")
    p.add_argument("--repetition-penalty", type=float, default=1.0,
                   help="reference text repetition penalty, window 16 (Evalkit uses 1.1)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (reference); >0 samples top-5")
    p.add_argument("--seed", type=int, default=None, help="sampling seed (temperature > 0)")
    p.add_argument("--ignore-eos", action="store_true", help="do not stop on 151667: exactly --max-tokens tokens")
    p.add_argument("--format", choices=("json", "text", "srt", "vtt"), default="json")
    g = p.add_argument_group("engine options")
    g.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16")
    g.add_argument("--max-num-seqs", type=int, default=16)
    g.add_argument("--max-model-len", type=int, default=MAX_POSITIONS)
    g.add_argument("--max-num-batched-tokens", type=int, default=None)
    g.add_argument("--kv-cache-gib", type=float, default=None, help="KV cache size (default 4 on CPU)")
    g.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    g.add_argument("--no-prefix-caching", dest="enable_prefix_caching", action="store_false")
    g.add_argument("--enforce-eager", action="store_true", help="no torch.compile / CUDA graphs")
    g.add_argument("--frontend-device", default="auto", help="auto | cpu | cuda[:N]")
    g.add_argument("--chunk-seconds", type=int, default=300, help="long-audio chunk (multiple of 30)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> Any:
    from kimi_model.transcriber import TranscriberConfig

    return TranscriberConfig(
        model_dir=args.model, speech_tokenizer_dir=args.speech_tokenizer, dtype=args.dtype,
        max_num_seqs=args.max_num_seqs, max_model_len=args.max_model_len,
        max_num_batched_tokens=args.max_num_batched_tokens, kv_cache_gib=args.kv_cache_gib,
        gpu_memory_utilization=args.gpu_memory_utilization, enable_prefix_caching=args.enable_prefix_caching,
        enforce_eager=args.enforce_eager, frontend_device=args.frontend_device, chunk_seconds=args.chunk_seconds)


def options_from_args(args: argparse.Namespace) -> Any:
    from kimi_model.transcriber import TranscriptionOptions

    return TranscriptionOptions(instruction=args.instruction or None, max_tokens=args.max_tokens,
                                temperature=args.temperature, repetition_penalty=args.repetition_penalty,
                                ignore_eos=args.ignore_eos, seed=args.seed)


def _ts(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def format_srt(result: Any) -> str:
    cues = [f"{i}\n{_ts(seg.start_s, ',')} --> {_ts(seg.end_s, ',')}\n{seg.text.strip()}\n"
            for i, seg in enumerate(result.segments, 1)]
    return "\n".join(cues)


def format_vtt(result: Any) -> str:
    cues = [f"{_ts(seg.start_s, '.')} --> {_ts(seg.end_s, '.')}\n{seg.text.strip()}\n" for seg in result.segments]
    return "WEBVTT\n\n" + "\n".join(cues)


def render(fmt: str, file: str, result: Any) -> str:
    if fmt == "json":
        return json.dumps({"file": file, "text": result.text, "token_ids": result.token_ids,
                           "duration_s": result.duration_s}, ensure_ascii=False)
    if fmt == "text":
        return result.text
    if fmt == "srt":
        return format_srt(result)
    return format_vtt(result)


def transcribe_files(transcriber: Any, files: Sequence[str], options: Any) -> list[Any]:
    """Results (TranscriptionResult or the exception) in input order; files run concurrently."""
    def one(path: str) -> Any:
        try:
            return transcriber.transcribe(path, options)
        except Exception as exc:  # noqa: BLE001 - reported per file
            return exc

    with ThreadPoolExecutor(max(1, min(len(files), 64))) as pool:
        return list(pool.map(one, files))


def run(args: argparse.Namespace, transcriber: Any = None) -> int:
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")   # keep stdout for results
    from kimi_model.errors import KimiError
    from kimi_model.transcriber import BlockingTranscriber

    try:
        options = options_from_args(args)
        own = transcriber is None
        if own:
            transcriber = BlockingTranscriber(config_from_args(args))
    except (KimiError, ValueError) as exc:
        code = getattr(exc, "code", "invalid_request")
        print(json.dumps({"error": {"code": code, "message": str(exc)}}), file=sys.stderr)
        return 2
    try:
        results = transcribe_files(transcriber, args.files, options)
    finally:
        if own:
            transcriber.close()
    status = 0
    for path, res in zip(args.files, results):
        if isinstance(res, Exception):
            status = 2
            code = getattr(res, "code", "internal_error")
            msg = getattr(res, "message", str(res))
            print(f"{path}: {code}: {msg}", file=sys.stderr)
            if args.format == "json":
                print(json.dumps({"file": path, "error": {"code": code, "message": msg}}, ensure_ascii=False))
            continue
        print(render(args.format, path, res))
    sys.stdout.flush()
    return status
