"""/v1/batches: create from items, an s3_prefix, a CSV/JSONL manifest in S3, or N uploads; get; list."""
from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify

from api.auth import authenticate
from api.jobs import base_url, json_body, page_args
from service.jobs import job_view
from service.submit import ApiError, batch_view, submit_batch

bp = Blueprint("batches", __name__, url_prefix="/v1")
bp.before_request(authenticate)


@bp.post("/batches")
def create_batch():
    c = current_app.extensions["kimi"]
    b = submit_batch(c, g.tenant, json_body())
    resp = jsonify(batch_view(c.store, b, base_url()))
    resp.status_code = 202
    return resp


@bp.get("/batches/<batch_id>")
def get_batch(batch_id: str):
    c = current_app.extensions["kimi"]
    b = c.store.get_batch_for(batch_id, g.tenant)
    if not b:
        raise ApiError("not_found", f"no batch {batch_id}")
    limit, cursor = page_args()
    try:
        start = int(cursor or 0)
    except ValueError:
        raise ApiError("invalid_request", "bad cursor") from None
    ids = c.store.batch_job_ids(batch_id)
    chunk = ids[start:start + limit]
    jobs = [c.store.get_job(i) for i in chunk]
    out = batch_view(c.store, b, base_url())
    nxt = str(start + limit) if start + limit < len(ids) else None
    out["jobs"] = {"object": "list", "data": [job_view(j, None, base_url()) for j in jobs if j],
                   "next_cursor": nxt, "has_more": nxt is not None}
    return jsonify(out)


@bp.get("/batches")
def list_batches():
    c = current_app.extensions["kimi"]
    limit, cursor = page_args()
    page = c.store.list_batches(g.tenant, limit, cursor)
    return jsonify({"object": "list", "data": [batch_view(c.store, b, base_url()) for b in page.items],
                    "next_cursor": page.next_cursor, "has_more": page.next_cursor is not None})
