"""/v1/jobs: create (multipart upload | JSON audio_url | JSON s3_uri), get, transcript, list, delete."""
from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, g, jsonify, request

from api.auth import authenticate
from service.formats import CONTENT_TYPES, FORMATS, render
from service.jobs import STATUSES, job_view
from service.submit import ApiError, submit_json, submit_upload

bp = Blueprint("jobs", __name__, url_prefix="/v1")
bp.before_request(authenticate)


def ctx():
    return current_app.extensions["kimi"]


def base_url() -> str:
    return request.host_url.rstrip("/")


def json_body():
    if not request.is_json:
        raise ApiError("unsupported_media_type",
                       "send application/json (or multipart/form-data with a 'file' part to upload)")
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError("invalid_json", "the request body is not valid JSON")
    return body


def _view(job: dict) -> dict:
    return job_view(job, ctx().store.webhook_attempts(ctx().store.jk(job["id"])), base_url())


@bp.post("/jobs")
def create_job():
    c = ctx()
    idem = request.headers.get("Idempotency-Key")
    if request.mimetype == "multipart/form-data":
        f = request.files.get("file")
        if f is None:
            raise ApiError("invalid_request", "multipart upload needs a 'file' part")
        job, replayed = submit_upload(c, g.tenant, f.stream, f.filename, request.form.to_dict(), idem)
    else:
        job, replayed = submit_json(c, g.tenant, json_body(), idem)
    resp = jsonify(_view(job))
    resp.status_code = 202
    resp.headers["Location"] = f"/v1/jobs/{job['id']}"
    if replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


def _get(job_id: str) -> dict:
    job = ctx().store.get_job_for(job_id, g.tenant)
    if not job:
        raise ApiError("not_found", f"no job {job_id}")
    return job


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    return jsonify(_view(_get(job_id)))


def transcript_response(job: dict, fmt: str):
    if fmt not in FORMATS:
        raise ApiError("invalid_request", f"format must be one of {', '.join(FORMATS)}")
    if job.get("deleted") == "1":
        raise ApiError("gone", "the job was deleted; its transcript is gone")
    st = job.get("status")
    if st == "failed":
        raise ApiError("job_failed", f"job failed: {job.get('error_code')}: {job.get('error_message', '')}")
    if st != "completed":
        raise ApiError("conflict", f"job is {st}; the transcript is available once it is completed")
    tr = json.loads(ctx().storage.get_bytes(job["transcript_key"]))
    return Response(render(tr, fmt), mimetype=CONTENT_TYPES[fmt].split(";")[0],
                    content_type=CONTENT_TYPES[fmt])


@bp.get("/jobs/<job_id>/transcript")
def get_transcript(job_id: str):
    return transcript_response(_get(job_id), request.args.get("format", "json"))


def page_args() -> tuple[int, str | None]:
    s = ctx().settings
    try:
        limit = int(request.args.get("limit", 50))
    except ValueError:
        raise ApiError("invalid_request", "limit must be an integer") from None
    if not 1 <= limit <= s.page_size_max:
        raise ApiError("invalid_request", f"limit must be between 1 and {s.page_size_max}")
    return limit, request.args.get("cursor") or None


@bp.get("/jobs")
def list_jobs():
    limit, cursor = page_args()
    status = request.args.get("status") or None
    if status and status not in STATUSES:
        raise ApiError("invalid_request", f"status must be one of {', '.join(STATUSES)}")
    page = ctx().store.list_jobs(g.tenant, status, limit, cursor)
    return jsonify({"object": "list", "data": [job_view(j, None, base_url()) for j in page.items],
                    "next_cursor": page.next_cursor, "has_more": page.next_cursor is not None})


@bp.delete("/jobs/<job_id>")
def delete_job(job_id: str):
    c = ctx()
    job = _get(job_id)
    if job.get("deleted") != "1":
        c.store.cancel(job_id)                     # queued/processing -> canceled; final states stay
        for k in ("audio_key", "transcript_key"):
            if job.get(k):
                c.storage.delete(job[k])
        if job.get("source") == "upload" or job.get("status") in ("queued", "processing"):
            c.storage.delete(f"transcripts/{job_id}.json")
        c.store.tombstone(job_id)
    return jsonify(_view(c.store.get_job(job_id)))


@bp.get("/webhook-secret")
def webhook_secret():
    """The caller's Standard-Webhooks secret, to verify webhook-signature headers."""
    return jsonify({"secret": ctx().settings.webhook_secret_for_key(g.api_key),
                    "scheme": "https://www.standardwebhooks.com"})
