"""Request validation and job creation shared by the API blueprints (the HTTP layer stays thin).

Every problem raises :class:`ApiError` (or a KimiError) with a stable code; the API maps
them to ``{"error": {"code", "message"}}`` with the right 4xx.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable

from kimi_model.errors import AudioDecodeError, KimiError, UnsupportedAudioFormatError
from service.jobs import JobStore, new_id
from service.ssrf import SsrfPolicy, check_url
from service.storage import parse_s3_uri

# HTTP status per error code (anything else KimiError-permanent: 422; transient: 503)
HTTP_STATUS = {
    "invalid_request": 400, "invalid_json": 400, "invalid_s3_uri": 400, "url_not_allowed": 400,
    "unauthorized": 401, "not_found": 404, "method_not_allowed": 405, "conflict": 409,
    "idempotency_key_reused": 409, "batch_full": 409, "gone": 410, "payload_too_large": 413,
    "unsupported_media_type": 415, "audio_unsupported_format": 415,
    "audio_invalid": 422, "audio_empty": 422, "audio_undecodable": 422, "audio_too_long": 422,
    "request_too_long": 422, "job_failed": 422, "s3_object_not_found": 422,
    "queue_unavailable": 503, "timeout": 504,
}


class ApiError(KimiError):
    permanent = True

    def __init__(self, code: str, message: str, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status or HTTP_STATUS.get(code, 400)


def http_status(e: KimiError) -> int:
    if isinstance(e, ApiError):
        return e.status
    if e.code in HTTP_STATUS:
        return HTTP_STATUS[e.code]
    return 422 if e.permanent else 503


@dataclass
class Ctx:
    settings: Any
    store: JobStore
    storage: Any
    s3input: Any
    send: Callable[..., None]     # send(task_name, args, queue, countdown)

    @property
    def policy(self) -> SsrfPolicy:
        return SsrfPolicy.from_settings(self.settings)


_LANG = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")


def _as_bool(v: Any, name: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("1", "true", "yes", "0", "false", "no", ""):
        return v.lower() in ("1", "true", "yes")
    raise ApiError("invalid_request", f"{name} must be a boolean")


def parse_options(src: dict[str, Any], settings, *, form: bool = False, defaults: dict | None = None) -> dict:
    """Validate the job options of a request. Returns a dict with only the keys given."""
    o: dict[str, Any] = dict(defaults or {})
    if "instruction" in src and src["instruction"] is not None:
        if not isinstance(src["instruction"], str) or len(src["instruction"]) > 4000:
            raise ApiError("invalid_request", "instruction must be a string of at most 4000 characters")
        o["instruction"] = src["instruction"]
    if src.get("language") not in (None, ""):
        lang = src["language"]
        if not isinstance(lang, str) or not _LANG.match(lang):
            raise ApiError("invalid_request", "language must be a language code such as 'en' or 'zh'")
        o["language"] = lang
    if src.get("max_tokens") not in (None, ""):
        try:
            mt = int(src["max_tokens"])
            if isinstance(src["max_tokens"], (bool, float)):
                raise ValueError
        except (TypeError, ValueError):
            raise ApiError("invalid_request", "max_tokens must be an integer") from None
        if not 1 <= mt <= settings.max_tokens_limit:
            raise ApiError("invalid_request", f"max_tokens must be between 1 and {settings.max_tokens_limit}")
        o["max_tokens"] = mt
    if src.get("temperature") not in (None, ""):
        try:
            t = float(src["temperature"])
            if isinstance(src["temperature"], bool):
                raise ValueError
        except (TypeError, ValueError):
            raise ApiError("invalid_request", "temperature must be a number") from None
        if not 0.0 <= t <= 2.0:
            raise ApiError("invalid_request", "temperature must be between 0 and 2")
        o["temperature"] = t
    if src.get("ignore_eos") not in (None, ""):
        o["ignore_eos"] = _as_bool(src["ignore_eos"], "ignore_eos")
    return o


def parse_common(src: dict[str, Any], ctx: Ctx, *, form: bool = False, default_priority: str = "interactive") -> dict:
    """priority, webhook_url, metadata."""
    out: dict[str, Any] = {}
    pr = src.get("priority") or default_priority
    if pr not in ("interactive", "bulk"):
        raise ApiError("invalid_request", "priority must be 'interactive' or 'bulk'")
    out["priority"] = pr
    if src.get("webhook_url"):
        check_url(src["webhook_url"], ctx.policy, "webhook_url")
        out["webhook_url"] = src["webhook_url"]
    md = src.get("metadata")
    if md not in (None, ""):
        if form and isinstance(md, str):
            try:
                md = json.loads(md)
            except ValueError:
                raise ApiError("invalid_request", "metadata must be a JSON object") from None
        if not isinstance(md, dict):
            raise ApiError("invalid_request", "metadata must be a JSON object")
        if len(json.dumps(md)) > 16384:
            raise ApiError("invalid_request", "metadata is larger than 16 KiB")
        out["metadata"] = md
    return out


def fingerprint(parts: list[Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def idempotent_lookup(ctx: Ctx, tenant: str, idem_key: str | None, job_id: str, fp: str) -> dict | None:
    """Reserve the key for job_id, or return the existing job for a repeated request."""
    if not idem_key:
        return None
    if len(idem_key) > 255:
        raise ApiError("invalid_request", "Idempotency-Key is longer than 255 characters")
    kh = hashlib.sha256(idem_key.encode()).hexdigest()
    existing = ctx.store.reserve_idempotency(tenant, kh, job_id)
    if existing is None:
        return None
    deadline = time.monotonic() + 10
    while True:                       # a concurrent twin may still be storing its audio
        job = ctx.store.get_job_for(existing, tenant)
        if job:
            if job.get("fingerprint") and job["fingerprint"] != fp:
                raise ApiError("idempotency_key_reused",
                               "this Idempotency-Key was used for a different request")
            return job
        if time.monotonic() > deadline:
            raise ApiError("conflict", "a request with this Idempotency-Key is still in progress")
        time.sleep(0.05)


def probe_upload(stream: BinaryIO, settings) -> tuple[str, int, float]:
    """Hash, size and duration of an uploaded stream (not read into memory). Leaves it at 0."""
    from kimi_model import audio_io

    h = hashlib.sha256()
    n = 0
    stream.seek(0)
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            break
        n += len(chunk)
        if n > settings.max_upload_bytes:
            raise ApiError("payload_too_large", f"upload exceeds the limit of {settings.max_upload_bytes} bytes")
        h.update(chunk)
    if n == 0:
        raise ApiError("audio_empty", "the uploaded file is empty")
    stream.seek(0)
    try:
        info = audio_io.probe(stream)
    except AudioDecodeError:
        # probe names unsupported containers (MP4, WebM, ...) from their magic bytes only
        # for bytes/paths; give it the head so the client hears "unsupported format"
        stream.seek(0)
        head = stream.read(64)
        try:
            audio_io.probe(head)
        except UnsupportedAudioFormatError:
            raise
        except KimiError:
            pass
        raise
    finally:
        stream.seek(0)
    if info.duration_s > settings.max_audio_seconds:
        raise ApiError("audio_too_long", f"audio is {info.duration_s:.1f} s; the limit is "
                                         f"{settings.max_audio_seconds:g} s")
    return h.hexdigest(), n, float(info.duration_s)


def new_job(tenant: str, source: str, options: dict, common: dict, **extra) -> dict:
    job = {"id": new_id("job"), "tenant": tenant, "source": source, "options": options,
           "priority": common.get("priority", "interactive"), "webhook_url": common.get("webhook_url"),
           "metadata": common.get("metadata")}
    job.update({k: v for k, v in extra.items() if v is not None})
    return job


def enqueue(ctx: Ctx, job: dict) -> None:
    try:
        ctx.send("kimi.transcribe", [job["id"]], "bulk" if job.get("priority") == "bulk" else "interactive", 0)
    except Exception as e:  # noqa: BLE001
        ctx.store.fail_unclaimed(job["id"], "queue_unavailable", f"could not enqueue: {e}")
        raise ApiError("queue_unavailable", "the job queue is unavailable; try again") from e
    finally:
        ctx.store.mark_enqueued(job["id"])      # sent, or failed for good: off the outbox


def submit_upload(ctx: Ctx, tenant: str, stream: BinaryIO, filename: str | None, form: dict,
                  idem_key: str | None) -> tuple[dict, bool]:
    """Returns (job, replayed)."""
    batch_id = form.get("batch_id") or None
    batch = None
    if batch_id:
        batch = ctx.store.get_batch_for(batch_id, tenant)
        if not batch:
            raise ApiError("not_found", f"no batch {batch_id}")
    defaults = json.loads(batch.get("options") or "{}") if batch else None
    options = parse_options(form, ctx.settings, form=True, defaults=defaults)
    common = parse_common(form, ctx, form=True, default_priority=(batch or {}).get("priority", "interactive"))
    sha, size, duration = probe_upload(stream, ctx.settings)
    fp = fingerprint(["upload", sha, options, common, batch_id])
    job = new_job(tenant, "upload", options, common, filename=(filename or "")[:255] or None,
                  duration_s=duration, size_bytes=size, fingerprint=fp, batch_id=batch_id)
    prior = idempotent_lookup(ctx, tenant, idem_key, job["id"], fp)
    if prior:
        return prior, True
    try:
        job["audio_key"] = f"audio/{job['id']}"
        ctx.storage.put_file(job["audio_key"], stream)
        if batch_id:
            n = ctx.store.attach_to_batch(batch_id, job["id"], tenant)
            if n < 0:
                ctx.storage.delete(job["audio_key"])
                raise ApiError("batch_full" if n == -3 else "conflict",
                               "the batch already has all its uploads" if n == -3
                               else "this batch does not take uploads")
        ctx.store.create_job(job)
    except BaseException:
        if idem_key:
            ctx.store.release_idempotency(tenant, hashlib.sha256(idem_key.encode()).hexdigest())
        raise
    enqueue(ctx, job)
    return ctx.store.get_job(job["id"]), False


def submit_json(ctx: Ctx, tenant: str, body: dict, idem_key: str | None) -> tuple[dict, bool]:
    if not isinstance(body, dict):
        raise ApiError("invalid_request", "the request body must be a JSON object")
    url, s3 = body.get("audio_url"), body.get("s3_uri")
    if bool(url) == bool(s3):
        raise ApiError("invalid_request", "give exactly one of audio_url or s3_uri (or upload a file as multipart)")
    options = parse_options(body, ctx.settings)
    common = parse_common(body, ctx)
    if url:
        check_url(url, ctx.policy, "audio_url")
        extra = {"audio_url": url}
    else:
        parse_s3_uri(s3, ctx.settings.s3_allowed_input_buckets)
        extra = {"s3_uri": s3}
    fp = fingerprint(["json", url, s3, options, common])
    job = new_job(tenant, "url" if url else "s3", options, common, fingerprint=fp, **extra)
    prior = idempotent_lookup(ctx, tenant, idem_key, job["id"], fp)
    if prior:
        return prior, True
    ctx.store.create_job(job)
    enqueue(ctx, job)
    return ctx.store.get_job(job["id"]), False


# --- batches -----------------------------------------------------------------------------

def _manifest_items(text: str, uri: str) -> list[dict]:
    items: list[dict] = []
    if uri.lower().endswith((".jsonl", ".ndjson")) or text.lstrip().startswith("{"):
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                raise ApiError("invalid_request", f"manifest line {i} is not valid JSON") from None
            if not isinstance(obj, dict):
                raise ApiError("invalid_request", f"manifest line {i} is not a JSON object")
            items.append(obj)
        return items
    rows = list(csv.DictReader(io.StringIO(text)))
    for i, row in enumerate(rows, 2):
        item: dict[str, Any] = {}
        src = row.pop("audio_url", None) or None
        s3 = row.pop("s3_uri", None) or row.pop("uri", None) or None
        if src:
            item["audio_url"] = src
        if s3:
            item["s3_uri"] = s3
        if not (src or s3):
            raise ApiError("invalid_request", f"manifest row {i} has no audio_url or s3_uri column value")
        for k in ("instruction", "language", "max_tokens", "temperature"):
            if row.get(k):
                item[k] = row.pop(k)
        rest = {k: v for k, v in row.items() if k}
        if rest:
            item["metadata"] = rest
        items.append(item)
    return items


def submit_batch(ctx: Ctx, tenant: str, body: dict) -> dict:
    s = ctx.settings
    if not isinstance(body, dict):
        raise ApiError("invalid_request", "the request body must be a JSON object")
    modes = [k for k in ("items", "s3_prefix", "manifest", "upload_count") if body.get(k) not in (None, "")]
    if len(modes) != 1:
        raise ApiError("invalid_request", "give exactly one of items, s3_prefix, manifest or upload_count")
    mode = modes[0]
    options = parse_options(body, s)
    common = parse_common(body, ctx, default_priority="bulk")
    batch_id = new_id("bat")
    batch = {"id": batch_id, "tenant": tenant, "kind": mode, "options": options, "priority": common["priority"],
             "webhook_url": common.get("webhook_url"), "metadata": common.get("metadata")}
    if mode == "upload_count":
        n = body["upload_count"]
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= s.batch_max_items:
            raise ApiError("invalid_request", f"upload_count must be an integer 1..{s.batch_max_items}")
        batch.update(kind="uploads", total=n, source=mode)
        ctx.store.create_batch(batch, [])
        return ctx.store.get_batch_for(batch_id, tenant)
    if mode == "items":
        items = body["items"]
        if not isinstance(items, list) or not items:
            raise ApiError("invalid_request", "items must be a non-empty list")
    elif mode == "s3_prefix":
        uris = ctx.s3input.list_prefix(body["s3_prefix"], s.batch_max_items)
        if not uris:
            raise ApiError("invalid_request", f"no objects under {body['s3_prefix']}")
        items = [{"s3_uri": u} for u in uris]
        batch["source"] = body["s3_prefix"]
    else:
        text = ctx.s3input.read_text(body["manifest"], 64 * 1024 * 1024)
        items = _manifest_items(text, body["manifest"])
        batch["source"] = body["manifest"]
        if not items:
            raise ApiError("invalid_request", "the manifest lists no items")
    if len(items) > s.batch_max_items:
        raise ApiError("invalid_request", f"a batch holds at most {s.batch_max_items} items")
    jobs = []
    checked_hosts: set[str] = set()
    for i, it in enumerate(items):
        if isinstance(it, str):
            it = {"s3_uri": it} if it.startswith("s3://") else {"audio_url": it}
        if not isinstance(it, dict):
            raise ApiError("invalid_request", f"items[{i}] must be an object")
        url, s3 = it.get("audio_url"), it.get("s3_uri")
        if bool(url) == bool(s3):
            raise ApiError("invalid_request", f"items[{i}] needs exactly one of audio_url or s3_uri")
        try:
            if url:
                from urllib.parse import urlsplit
                host = urlsplit(url).hostname or ""
                if host not in checked_hosts:
                    check_url(url, ctx.policy, f"items[{i}].audio_url")
                    checked_hosts.add(host)
            else:
                parse_s3_uri(s3, s.s3_allowed_input_buckets)
            iopts = parse_options(it, s, defaults=options)
            icommon = {"priority": common["priority"]}
            if it.get("metadata") is not None:
                icommon.update(parse_common({"metadata": it["metadata"]}, ctx, default_priority=common["priority"]))
            if it.get("webhook_url"):
                icommon.update(parse_common({"webhook_url": it["webhook_url"]}, ctx,
                                            default_priority=common["priority"]))
        except KimiError as e:
            raise ApiError(getattr(e, "code", "invalid_request"), f"items[{i}]: {e.message}",
                           http_status(e)) from e
        jobs.append(new_job(tenant, "url" if url else "s3", iopts, icommon, batch_id=batch_id,
                            audio_url=url, s3_uri=s3))
    batch["total"] = len(jobs)
    ctx.store.create_batch(batch, [j["id"] for j in jobs])
    for j in jobs:
        ctx.store.create_job(j)
    for j in jobs:
        enqueue(ctx, j)
    return ctx.store.get_batch_for(batch_id, tenant)


def batch_view(store: JobStore, b: dict, base_url: str = "") -> dict:
    from service.jobs import iso
    bid = b["id"]
    out = {"id": bid, "object": "batch", "status": b.get("status"), "kind": b.get("kind"),
           "source": b.get("source"), "priority": b.get("priority"), "total": int(b.get("total") or 0),
           "created_at": iso(b.get("created_at")), "finished_at": iso(b.get("finished_at")),
           "counts": store.batch_counts(bid), "metadata": json.loads(b.get("metadata") or "null"),
           "status_url": f"{base_url}/v1/batches/{bid}"}
    if b.get("kind") == "uploads":
        out["uploaded"] = len(store.batch_job_ids(bid))
    if b.get("webhook_url"):
        out["webhook"] = {"url": b["webhook_url"], "status": b.get("wh_status", "none"),
                          "attempts": store.webhook_attempts(store.bk(bid))}
    return out
