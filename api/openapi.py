"""GET /openapi.json: the OpenAPI 3.1 description of the API."""
from __future__ import annotations

from flask import Blueprint, jsonify

bp = Blueprint("openapi", __name__)

_ERR = {"$ref": "#/components/schemas/Error"}


def _resp(desc: str, schema=None, ctype="application/json") -> dict:
    r: dict = {"description": desc}
    if schema is not None:
        r["content"] = {ctype: {"schema": schema}}
    return r


def _errors(*codes: int) -> dict:
    return {str(c): _resp("error", _ERR) for c in codes}


OPTIONS = {
    "instruction": {"type": "string", "description": "Instruction message; empty = none. Default: "
                    "'Please transcribe the following audio:'"},
    "language": {"type": "string", "description": "Language hint (recorded, echoed in verbose_json)."},
    "webhook_url": {"type": "string", "format": "uri", "description": "Standard-Webhooks POST on completion/failure."},
    "metadata": {"type": "object", "description": "Free-form, returned with the job (<= 16 KiB)."},
    "priority": {"type": "string", "enum": ["interactive", "bulk"], "default": "interactive"},
    "max_tokens": {"type": "integer", "minimum": 1},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2, "default": 0},
    "ignore_eos": {"type": "boolean", "description": "Decode exactly max_tokens (benchmarks/tests)."},
}

SPEC = {
    "openapi": "3.1.0",
    "info": {"title": "Kimi-ASR job service", "version": "0.1.0",
             "description": "Speech-to-text jobs on Kimi-Audio. Auth: `Authorization: Bearer <API key>`; "
                            "errors: `{\"error\": {\"code\", \"message\"}}`."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}, "type": {"type": "string"}},
                "required": ["code", "message"]}}},
            "Job": {"type": "object", "properties": {
                "id": {"type": "string"}, "status": {"type": "string",
                                                     "enum": ["queued", "processing", "completed", "failed",
                                                              "canceled"]},
                "status_url": {"type": "string"}, "progress": {"type": "number"},
                "created_at": {"type": ["string", "null"]}, "started_at": {"type": ["string", "null"]},
                "finished_at": {"type": ["string", "null"]}, "audio_duration_s": {"type": ["number", "null"]},
                "error": {"type": ["object", "null"], "properties": {"code": {"type": "string"},
                                                                     "message": {"type": "string"}}},
                "webhook": {"type": "object", "properties": {"url": {"type": "string"}, "status": {"type": "string"},
                                                             "attempts": {"type": "array", "items": {"type": "object"}}}},
                "batch_id": {"type": ["string", "null"]}, "metadata": {}, "options": {"type": "object"},
                "deleted": {"type": "boolean"}}},
            "JobList": {"type": "object", "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
                                                         "next_cursor": {"type": ["string", "null"]},
                                                         "has_more": {"type": "boolean"}}},
            "JobCreateJSON": {"type": "object", "properties": {"audio_url": {"type": "string", "format": "uri"},
                                                               "s3_uri": {"type": "string"}, **OPTIONS}},
            "JobCreateUpload": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"},
                                                                 "batch_id": {"type": "string"}, **OPTIONS},
                                "required": ["file"]},
            "Batch": {"type": "object", "properties": {"id": {"type": "string"}, "status": {"type": "string"},
                                                       "total": {"type": "integer"},
                                                       "counts": {"type": "object"},
                                                       "jobs": {"$ref": "#/components/schemas/JobList"}}},
            "BatchCreate": {"type": "object", "description": "Exactly one of items, s3_prefix, manifest, upload_count.",
                            "properties": {
                                "items": {"type": "array", "items": {"type": "object", "properties": {
                                    "audio_url": {"type": "string"}, "s3_uri": {"type": "string"},
                                    "metadata": {"type": "object"}}}},
                                "s3_prefix": {"type": "string", "example": "s3://bucket/calls/2024/"},
                                "manifest": {"type": "string", "description": "s3:// URI of a CSV (column audio_url or "
                                             "s3_uri; other columns become metadata) or JSONL file"},
                                "upload_count": {"type": "integer", "description": "open a batch for N uploads "
                                                 "(POST /v1/jobs with batch_id)"},
                                **OPTIONS}},
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/jobs": {
            "post": {"summary": "Create a job", "parameters": [
                {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"},
                 "description": "Repeating a request with the same key returns the same job."}],
                "requestBody": {"content": {"multipart/form-data": {"schema": {"$ref": "#/components/schemas/JobCreateUpload"}},
                                            "application/json": {"schema": {"$ref": "#/components/schemas/JobCreateJSON"}}}},
                "responses": {"202": _resp("accepted", {"$ref": "#/components/schemas/Job"}),
                              **_errors(400, 401, 404, 409, 413, 415, 422)}},
            "get": {"summary": "List jobs (newest first)", "parameters": [
                {"name": "status", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 50}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": _resp("jobs", {"$ref": "#/components/schemas/JobList"}), **_errors(400, 401)}}},
        "/v1/jobs/{id}": {
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"summary": "Job status", "responses": {"200": _resp("job", {"$ref": "#/components/schemas/Job"}),
                                                           **_errors(401, 404)}},
            "delete": {"summary": "Cancel a queued job; delete audio and transcript; keep a tombstone",
                       "responses": {"200": _resp("tombstone", {"$ref": "#/components/schemas/Job"}),
                                     **_errors(401, 404)}}},
        "/v1/jobs/{id}/transcript": {
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "format", "in": "query", "schema": {
                               "type": "string", "enum": ["json", "text", "srt", "vtt", "verbose_json"]}}],
            "get": {"summary": "Transcript", "responses": {"200": {"description": "transcript"},
                                                           **_errors(400, 401, 404, 409, 410, 422)}}},
        "/v1/batches": {
            "post": {"summary": "Create a batch (bulk queue by default)",
                     "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchCreate"}}}},
                     "responses": {"202": _resp("batch", {"$ref": "#/components/schemas/Batch"}),
                                   **_errors(400, 401, 415, 422)}},
            "get": {"summary": "List batches", "responses": {"200": {"description": "batches"}}}},
        "/v1/batches/{id}": {
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                           {"name": "cursor", "in": "query", "schema": {"type": "string"}}],
            "get": {"summary": "Batch with counts per status and a page of its jobs",
                    "responses": {"200": _resp("batch", {"$ref": "#/components/schemas/Batch"}), **_errors(401, 404)}}},
        "/v1/audio/transcriptions": {
            "post": {"summary": "OpenAI-compatible synchronous transcription",
                     "requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object", "properties": {
                         "file": {"type": "string", "format": "binary"}, "model": {"type": "string"},
                         "prompt": {"type": "string"}, "language": {"type": "string"},
                         "response_format": {"type": "string", "enum": ["json", "text", "srt", "vtt", "verbose_json"]},
                         "temperature": {"type": "number"}}, "required": ["file"]}}}},
                     "responses": {"200": {"description": "transcript in response_format"},
                                   **_errors(400, 401, 413, 415, 422, 504)}}},
        "/v1/webhook-secret": {"get": {"summary": "The caller's webhook signing secret (whsec_...)",
                                       "responses": {"200": {"description": "secret"}}}},
        "/healthz": {"get": {"security": [], "summary": "Process liveness", "responses": {"200": {"description": "ok"}}}},
        "/readyz": {"get": {"security": [], "summary": "Redis, storage and a live worker",
                            "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
        "/metrics": {"get": {"security": [], "summary": "Prometheus metrics",
                             "responses": {"200": {"description": "text exposition"}}}},
    },
}


@bp.get("/openapi.json")
def openapi():
    return jsonify(SPEC)
