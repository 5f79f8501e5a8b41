"""POST /v1/audio/transcriptions - OpenAI-compatible, synchronous.

Takes the OpenAI multipart form (file, model, prompt, response_format, temperature,
language), creates an interactive job and waits for it up to ``KIMI_SYNC_TIMEOUT_S``
(default 300 s). On timeout: 504 ``timeout`` whose message names the job id (it keeps
running; poll /v1/jobs/<id>). ``prompt`` becomes the instruction; ``model`` is accepted
and ignored (one model is served); ``language`` is recorded (the model detects language).
"""
from __future__ import annotations

from flask import Blueprint, current_app, g, request

from api.auth import authenticate
from api.jobs import transcript_response
from service.formats import FORMATS
from service.submit import ApiError, submit_upload

bp = Blueprint("openai", __name__, url_prefix="/v1")
bp.before_request(authenticate)


@bp.post("/audio/transcriptions")
def transcriptions():
    c = current_app.extensions["kimi"]
    if request.mimetype != "multipart/form-data":
        raise ApiError("unsupported_media_type", "send multipart/form-data with a 'file' part")
    f = request.files.get("file")
    if f is None:
        raise ApiError("invalid_request", "missing 'file'")
    fmt = request.form.get("response_format") or "json"
    if fmt not in FORMATS:
        raise ApiError("invalid_request", f"response_format must be one of {', '.join(FORMATS)}")
    form = {"temperature": request.form.get("temperature"), "language": request.form.get("language"),
            "priority": "interactive"}
    if request.form.get("prompt"):
        form["instruction"] = request.form["prompt"]
    for k in ("max_tokens", "ignore_eos"):        # extensions beyond the OpenAI form
        if request.form.get(k):
            form[k] = request.form[k]
    job, _ = submit_upload(c, g.tenant, f.stream, f.filename, form, request.headers.get("Idempotency-Key"))
    if not c.store.wait_done(job["id"], c.settings.sync_timeout_s):
        raise ApiError("timeout", f"job {job['id']} did not finish within {c.settings.sync_timeout_s:g} s; "
                                  f"it is still running - poll /v1/jobs/{job['id']}")
    done = c.store.get_job(job["id"]) or {}
    resp = transcript_response(done, fmt)
    resp.headers["X-Kimi-Job-Id"] = job["id"]
    return resp
