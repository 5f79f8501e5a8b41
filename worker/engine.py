"""Pins one BlockingTranscriber per worker process.

``start(settings)`` builds it (vLLM engine start: tens of seconds) before the worker
consumes anything; every task thread then shares it, so vLLM batches concurrent jobs.
Tests of the task logic call ``set_transcriber(fake)`` instead.
"""
from __future__ import annotations

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
    """A started BlockingTranscriber for this process (model from settings or KIMI_MODEL_DIR)."""
    from kimi_model.transcriber import BlockingTranscriber, TranscriberConfig

    over: dict = {}
    if settings.model_dir:
        over["model_dir"] = settings.model_dir
    if settings.speech_tokenizer_dir:
        over["speech_tokenizer_dir"] = settings.speech_tokenizer_dir
    if not os.environ.get("KIMI_MAX_NUM_SEQS"):
        # every task thread may have a request in flight; let vLLM batch all of them
        over["max_num_seqs"] = max(16, settings.worker_concurrency)
    if not os.environ.get("KIMI_SCHEDULING_POLICY"):
        over["scheduling_policy"] = "priority"   # interactive (0) before bulk (1) inside the engine too
    cfg = TranscriberConfig.from_env(**over)
    return BlockingTranscriber(cfg)           # starts the engine (blocks until ready)


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
