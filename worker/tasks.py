"""Celery tasks: transcribe a job, deliver a webhook attempt; plus the worker's janitor.

Exactly-once: ``kimi.transcribe`` first *claims* the job in Redis (Lua). A redelivered
message for a job that is completed/failed/canceled, or that another live worker is
processing, is acked and does nothing. The transcript key is deterministic
(``transcripts/<job>.json``) and only the holder of the live lease can ``finish`` the job, so
a job yields one transcript and one webhook event however often its message is delivered.
A worker renews its lease every lease/3 s; the janitor (a thread in every worker) re-queues
jobs whose lease lapsed (their worker died), which is faster than waiting for the broker's
visibility timeout.

Errors: ``KimiError.permanent`` (undecodable, too long, bad URL, ...) fail the job at once
with the error's code. Anything else (storage, network, engine hiccup) is transient: the
job goes back to queued and the task retries with exponential backoff
(``KIMI_RETRY_BACKOFF_S`` x 2^n, max 300 s) up to ``KIMI_TASK_MAX_RETRIES``, then fails.
"""
from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from celery import signals

from kimi_model.errors import AudioTooLongError, KimiError
from service import metrics
from service.formats import transcript_from_result
from service.jobs import JobStore, job_view
from service.settings import get_settings
from service.ssrf import SsrfPolicy, fetch_to_file
from service.storage import S3Input, make_storage
from service.webhooks import build_event, deliver_once
from worker import engine
from worker.celery_app import app

log = logging.getLogger("kimi.worker")
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


class JobTimeoutError(KimiError):
    code = "timeout"
    permanent = True


@dataclass
class Deps:
    settings: Any
    store: JobStore
    storage: Any
    s3input: Any
    transcriber: Callable[[], Any]
    send: Callable[..., None]          # send(task_name, args, queue, countdown)
    worker_id: str = WORKER_ID
    options_cls: Any = None            # TranscriptionOptions (injectable for unit tests)
    extra: dict = field(default_factory=dict)


_deps: Deps | None = None
_deps_lock = threading.Lock()


def _celery_send(name: str, args: list, queue: str, countdown: float = 0.0) -> None:
    app.send_task(name, args=args, queue=queue, countdown=countdown or None)


def get_deps() -> Deps:
    global _deps
    with _deps_lock:
        if _deps is None:
            s = get_settings()
            _deps = Deps(settings=s, store=JobStore.from_settings(s), storage=make_storage(s),
                         s3input=S3Input(s), transcriber=lambda: engine.get(s), send=_celery_send)
        return _deps


def set_deps(d: Deps | None) -> None:
    global _deps
    _deps = d


# --- enqueueing (used by the API too) -------------------------------------------------

def queue_for(priority: str) -> str:
    return "bulk" if priority == "bulk" else "interactive"


def enqueue_job(send, job_id: str, priority: str, countdown: float = 0.0) -> None:
    send("kimi.transcribe", [job_id], queue_for(priority), countdown)


# --- the job --------------------------------------------------------------------------

class LeaseKeeper(threading.Thread):
    """Renews the claim lease; at the time limit, fails the job with `timeout`."""

    def __init__(self, d: Deps, job_id: str, token: str):
        super().__init__(daemon=True, name=f"lease-{job_id}")
        self.d, self.job_id, self.token = d, job_id, token
        self.stopped = threading.Event()
        self.timed_out = False

    def run(self) -> None:
        s = self.d.settings
        deadline = time.monotonic() + s.task_time_limit_s
        while not self.stopped.wait(max(0.2, s.lease_s / 3)):
            if time.monotonic() > deadline:
                self.timed_out = True
                n = self.d.store.finish(self.job_id, self.token, "failed", {
                    "error_code": "timeout",
                    "error_message": f"transcription exceeded the task time limit of {s.task_time_limit_s:g} s"})
                if n:
                    _after_finish(self.d, self.job_id, n)
                return
            try:
                self.d.store.renew(self.job_id, self.token)
            except Exception:  # noqa: BLE001 - Redis blip; next tick retries
                log.warning("lease renew failed", extra={"job_id": self.job_id})

    def stop(self) -> None:
        self.stopped.set()


def _fetch_audio(d: Deps, job: dict, f) -> None:
    src = job.get("source")
    if src == "upload":
        d.storage.download(job["audio_key"], f)
    elif src == "url":
        fetch_to_file(job["audio_url"], SsrfPolicy.from_settings(d.settings), f, d.settings.max_upload_bytes,
                      d.settings.url_fetch_timeout_s)
    elif src == "s3":
        size = d.s3input.head(job["s3_uri"])
        if size > d.settings.max_upload_bytes:
            from service.ssrf import FetchTooLargeError
            raise FetchTooLargeError(f"{job['s3_uri']} is {size} bytes; the limit is {d.settings.max_upload_bytes}")
        d.s3input.download(job["s3_uri"], f)
    else:
        raise KimiError(f"job has unknown source {src!r}")
    f.flush()


def _options(d: Deps, job: dict):
    if d.options_cls is None:
        from kimi_model.transcriber import TranscriptionOptions
        d.options_cls = TranscriptionOptions
    o = json.loads(job.get("options") or "{}")
    kw: dict = {}
    if "instruction" in o:
        kw["instruction"] = o["instruction"]
    for k in ("max_tokens", "temperature", "ignore_eos"):
        if o.get(k) is not None:
            kw[k] = o[k]
    return d.options_cls(**kw)


def process_job(d: Deps, job_id: str, retries: int = 0) -> str:
    """Run one job. Returns what happened: claimed status or 'completed'/'failed'/'retry'/'lost'."""
    token = secrets.token_hex(12)
    st = d.store.claim(job_id, token, d.worker_id)
    if st != "claimed":
        log.info("job not claimed", extra={"job_id": job_id, "state": st})
        if st in ("completed", "failed"):
            resume_after_finish(d, job_id)
        return st
    keeper = LeaseKeeper(d, job_id, token)
    keeper.start()
    job = d.store.get_job(job_id) or {}
    t0 = time.time()
    log.info("job started", extra={"job_id": job_id, "attempt": job.get("attempts")})
    try:
        spool = os.path.join(d.settings.data_dir, "spool")
        os.makedirs(spool, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=spool, prefix=f"{job_id}-", suffix=".audio") as f:
            _fetch_audio(d, job, f)
            if job.get("source") != "upload":        # uploads were probed by the API already
                from kimi_model import audio_io
                info = audio_io.probe(f.name)
                if info.duration_s > d.settings.max_audio_seconds:
                    raise AudioTooLongError(f"audio is {info.duration_s:.1f} s; the limit is "
                                            f"{d.settings.max_audio_seconds:g} s")
            last = [0.0]

            def progress(p: float) -> None:
                now = time.monotonic()
                if now - last[0] >= 0.5 or p >= 1.0:
                    last[0] = now
                    try:
                        d.store.set_progress(job_id, p)
                    except Exception:  # noqa: BLE001
                        pass

            try:
                result = d.transcriber().transcribe(
                    f.name, _options(d, job), priority=0 if job.get("priority") != "bulk" else 1,
                    progress=progress, timeout=d.settings.task_time_limit_s)
            except (TimeoutError, concurrent.futures.TimeoutError) as e:
                raise JobTimeoutError(f"transcription exceeded the task time limit of "
                                      f"{d.settings.task_time_limit_s:g} s") from e
        if keeper.timed_out:
            return "failed"
        o = json.loads(job.get("options") or "{}")
        tr = transcript_from_result(result, o.get("language"))
        tr["temperature"] = o.get("temperature", 0.0)
        key = f"transcripts/{job_id}.json"
        d.storage.put_bytes(key, json.dumps(tr, ensure_ascii=False).encode(), "application/json")
        proc_s = time.time() - t0
        n = d.store.finish(job_id, token, "completed", {
            "duration_s": repr(float(result.duration_s)), "transcript_key": key,
            "processing_s": repr(proc_s), "text_preview": result.text[:200]})
        if not n:
            # canceled/deleted meanwhile (or our lease was taken over): leave no transcript behind
            cur = d.store.get_job(job_id) or {}
            if cur.get("status") == "canceled" or cur.get("deleted") == "1" or not cur:
                d.storage.delete(key)
            log.info("job finished elsewhere", extra={"job_id": job_id, "state": cur.get("status")})
            return "lost"
        _record_metrics(d, job, float(result.duration_s), proc_s)
        _after_finish(d, job_id, n)
        log.info("job completed", extra={"job_id": job_id, "audio_s": result.duration_s, "processing_s": proc_s})
        return "completed"
    except KimiError as e:
        if e.permanent or retries >= d.settings.task_max_retries:
            n = d.store.finish(job_id, token, "failed", {"error_code": e.code, "error_message": e.message})
            if n:
                _after_finish(d, job_id, n)
            log.info("job failed", extra={"job_id": job_id, "code": e.code, "error": e.message})
            return "failed"
        d.store.release(job_id, token, e.code, e.message)
        log.warning("job transient error, will retry", extra={"job_id": job_id, "code": e.code, "error": e.message})
        return "retry"
    except Exception as e:  # noqa: BLE001 - unknown: treat as transient, bounded by max retries
        msg = f"{type(e).__name__}: {e}"
        if retries >= d.settings.task_max_retries:
            n = d.store.finish(job_id, token, "failed", {"error_code": "internal_error", "error_message": msg})
            if n:
                _after_finish(d, job_id, n)
            log.exception("job failed", extra={"job_id": job_id})
            return "failed"
        d.store.release(job_id, token, "internal_error", msg)
        log.exception("job error, will retry", extra={"job_id": job_id})
        return "retry"
    finally:
        keeper.stop()


def _record_metrics(d: Deps, job: dict, audio_s: float, proc_s: float) -> None:
    try:
        r = d.store.r
        now = time.time()
        created = float(job.get("created_at") or now)
        started = float(job.get("started_at") or now)
        d.store.incr_stat("audio_seconds", audio_s)
        d.store.incr_stat("processing_seconds", proc_s)
        metrics.observe(r, "job_latency_seconds", now - created)
        metrics.observe(r, "job_queue_wait_seconds", max(0.0, started - created))
        metrics.observe(r, "job_processing_seconds", proc_s)
        if audio_s > 0:
            metrics.observe(r, "job_real_time_factor", proc_s / audio_s)
    except Exception:  # noqa: BLE001
        log.warning("metrics update failed", exc_info=True)


def _after_finish(d: Deps, job_id: str, n: int) -> None:
    """Only the single winner of a job's final transition gets here."""
    job = d.store.get_job(job_id) or {}
    if job.get("webhook_url"):
        data = job_view(job)
        data.pop("webhook", None)
        if job.get("status") == "completed":
            data["text"] = None
            try:
                data["text"] = json.loads(d.storage.get_bytes(job["transcript_key"]))["text"]
            except Exception:  # noqa: BLE001
                pass
        start_webhook(d, d.store.jk(job_id), f"msg_{job_id}_{job['status']}", f"job.{job['status']}", data)
    if n == 2 and job.get("batch_id"):
        batch_completed(d, job["batch_id"])


def batch_completed(d: Deps, batch_id: str) -> None:
    b = d.store.r.hgetall(d.store.bk(batch_id))
    if b.get("webhook_url"):
        data = {"id": batch_id, "object": "batch", "status": "completed",
                "counts": d.store.batch_counts(batch_id), "total": int(b.get("total", 0)),
                "metadata": json.loads(b.get("metadata") or "null")}
        start_webhook(d, d.store.bk(batch_id), f"msg_{batch_id}_completed", "batch.completed", data)


def start_webhook(d: Deps, key: str, msg_id: str, event: str, data: dict) -> None:
    if d.store.webhook_prepare(key, msg_id, build_event(event, data)):
        d.send("kimi.webhook", [key, 1], "webhooks", d.settings.webhook_schedule_s[0])


def resume_after_finish(d: Deps, job_id: str) -> None:
    """A redelivered message of a finished job: fire what its worker may have died before firing.

    Both webhooks are armed at most once (``webhook_prepare``), so this is a no-op when the
    first run got that far.
    """
    job = d.store.get_job(job_id) or {}
    if job.get("status") not in ("completed", "failed"):
        return
    if job.get("webhook_url") and job.get("wh_status") == "none":
        _after_finish(d, job_id, 1)
    batch = job.get("batch_id")
    if batch and d.store.r.hmget(d.store.bk(batch), "status", "wh_status") == ["completed", "none"]:
        batch_completed(d, batch)


def deliver_webhook(d: Deps, key: str, attempt: int) -> str:
    claim = d.store.webhook_claim(key, attempt)
    if claim == "resume":
        d.send("kimi.webhook", [key, attempt + 1], "webhooks", d.settings.webhook_schedule_s[attempt])
        return "retry"
    if claim != "claimed":
        return "skip"
    h = d.store.r.hgetall(key)
    secret = d.settings.webhook_secret_for_tenant(h.get("tenant", ""))
    if secret is None:
        d.store.webhook_record(key, {"attempt": attempt, "success": False, "error": "API key no longer exists"},
                               "failed")
        return "failed"
    rec = deliver_once(h["webhook_url"], secret, h["wh_id"], h["wh_body"], SsrfPolicy.from_settings(d.settings),
                       d.settings.webhook_timeout_s)
    rec = {"attempt": attempt, **rec}
    schedule = d.settings.webhook_schedule_s
    if rec["success"]:
        d.store.webhook_record(key, rec, "delivered")
        d.store.incr_stat("webhook_success", 1)
        return "delivered"
    d.store.incr_stat("webhook_failure", 1)
    if attempt >= len(schedule):
        d.store.webhook_record(key, rec, "failed")
        return "failed"
    rec["next_attempt_in_s"] = schedule[attempt]
    d.store.webhook_record(key, rec, None)
    d.send("kimi.webhook", [key, attempt + 1], "webhooks", schedule[attempt])
    return "retry"


# --- janitor --------------------------------------------------------------------------

def janitor_tick(d: Deps) -> None:
    for job_id in d.store.unenqueued(d.settings.enqueue_grace_s):
        if not d.store.mark_enqueued(job_id):
            continue                                   # another janitor took it
        job = d.store.get_job(job_id) or {}
        if job.get("status") == "queued":
            log.warning("enqueueing job the API never handed to the broker", extra={"job_id": job_id})
            enqueue_job(d.send, job_id, job.get("priority", "interactive"))
    for job_id in d.store.orphaned_jobs():
        job = d.store.get_job(job_id) or {}
        log.warning("re-queueing job whose worker died", extra={"job_id": job_id, "worker": job.get("worker")})
        enqueue_job(d.send, job_id, job.get("priority", "interactive"))
    for job_id in d.store.expired():
        job = d.store.get_job(job_id) or {}
        for k in ("audio_key", "transcript_key"):
            if job.get(k):
                try:
                    d.storage.delete(job[k])
                except Exception:  # noqa: BLE001
                    log.warning("retention delete failed", extra={"job_id": job_id, "key": job[k]})
        d.store.purge(job_id)


class Background(threading.Thread):
    """Heartbeat + janitor, once the engine is ready."""

    def __init__(self, d: Deps):
        super().__init__(daemon=True, name="kimi-janitor")
        self.d = d
        self.stopped = threading.Event()

    def run(self) -> None:
        s = self.d.settings
        interval = max(0.5, min(s.worker_heartbeat_s, s.lease_s / 3))
        while True:
            try:
                self.d.store.heartbeat(self.d.worker_id, s.worker_heartbeat_s * 3,
                                       {"pid": os.getpid(), "concurrency": s.worker_concurrency})
                janitor_tick(self.d)
            except Exception:  # noqa: BLE001
                log.warning("janitor tick failed", exc_info=True)
            if self.stopped.wait(interval):
                return


# --- Celery wiring --------------------------------------------------------------------

@app.task(name="kimi.transcribe", bind=True, max_retries=None, acks_late=True)
def transcribe_task(self, job_id: str) -> str:
    d = get_deps()
    out = process_job(d, job_id, retries=self.request.retries)
    if out == "retry":
        job = d.store.get_job(job_id) or {}
        delay = min(300.0, d.settings.retry_backoff_s * (2 ** self.request.retries))
        raise self.retry(countdown=delay, queue=queue_for(job.get("priority", "interactive")))
    return out


@app.task(name="kimi.webhook", acks_late=True)
def webhook_task(key: str, attempt: int) -> str:
    return deliver_webhook(get_deps(), key, attempt)


_background: Background | None = None


@signals.worker_init.connect
def _on_worker_init(**_kw) -> None:
    from service.logs import setup_logging
    s = get_settings()
    setup_logging(s.log_level)
    try:
        s.validate_worker()
    except Exception as e:  # noqa: BLE001
        log.critical("refusing to start: %s", e)
        os._exit(78)
    try:
        engine.start(s)
    except Exception:  # noqa: BLE001
        log.critical("transcriber failed to start", exc_info=True)
        os._exit(1)


@signals.worker_ready.connect
def _on_worker_ready(**_kw) -> None:
    global _background
    _background = Background(get_deps())
    _background.start()
    log.info("worker ready", extra={"worker": WORKER_ID})


@signals.worker_shutdown.connect
def _on_worker_shutdown(**_kw) -> None:
    if _background is not None:
        _background.stopped.set()
        try:
            get_deps().store.r.delete(f"kimi:worker:{WORKER_ID}")
        except Exception:  # noqa: BLE001
            pass
    engine.stop()
