"""Pins one BlockingTranscriber per worker process.

``start(settings)`` builds it (vLLM engine start: tens of seconds) before the worker
consumes anything; every task thread then shares it, so vLLM batches concurrent jobs.
Tests of the task logic call ``set_transcriber(fake)`` instead.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading

log = logging.getLogger("kimi.worker.engine")
_lock = threading.Lock()
_transcriber = None


def set_transcriber(t) -> None:
    global _transcriber
    _transcriber = t


def build(settings):
    from kimi_model.transcriber import BlockingTranscriber, TranscriberConfig

    if settings.model_dir:
        os.environ.setdefault("KIMI_MODEL_DIR", settings.model_dir)
    if settings.speech_tokenizer_dir:
        os.environ.setdefault("KIMI_SPEECH_TOKENIZER_DIR", settings.speech_tokenizer_dir)
    cfg = TranscriberConfig.from_env()
    over = {}
    names = {f.name for f in dataclasses.fields(cfg)} if dataclasses.is_dataclass(cfg) else set()
    if settings.model_dir and "model_dir" in names:
        over["model_dir"] = settings.model_dir
    if settings.speech_tokenizer_dir and "speech_tokenizer_dir" in names:
        over["speech_tokenizer_dir"] = settings.speech_tokenizer_dir
    if "max_num_seqs" in names and not os.environ.get("KIMI_MAX_NUM_SEQS"):
        over["max_num_seqs"] = max(getattr(cfg, "max_num_seqs", 0) or 0, settings.worker_concurrency)
    if over:
        cfg = dataclasses.replace(cfg, **over)
    t = BlockingTranscriber(cfg)
    start = getattr(t, "start", None)
    if callable(start):
        start()
    return t


def start(settings):
    global _transcriber
    with _lock:
        if _transcriber is None:
            log.info("starting transcriber", extra={"model_dir": settings.model_dir})
            _transcriber = build(settings)
            log.info("transcriber ready")
        return _transcriber


def get(settings):
    return _transcriber if _transcriber is not None else start(settings)


def stop() -> None:
    global _transcriber
    with _lock:
        t, _transcriber = _transcriber, None
    if t is not None:
        close = getattr(t, "close", None) or getattr(t, "shutdown", None)
        if callable(close):
            try:
                close()
            except Exception:  # noqa: BLE001
                log.exception("transcriber close failed")
