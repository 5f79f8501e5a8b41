"""Every error leaves as {"error": {"code", "message", "type"}} with a proper status."""
from __future__ import annotations

import logging

import redis

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from kimi_model.errors import KimiError
from service.submit import ApiError, http_status

log = logging.getLogger("kimi.api")

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 408: "timeout", 409: "conflict", 413: "payload_too_large",
               415: "unsupported_media_type", 429: "rate_limited"}


def error_response(status: int, code: str, message: str):
    kind = "invalid_request_error" if status < 500 else "server_error"
    if status == 401:
        kind = "authentication_error"
    resp = jsonify({"error": {"code": code, "message": message, "type": kind}})
    resp.status_code = status
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="kimi-asr"'
    return resp


def _drain(limit: int = 64 * 1024 * 1024) -> None:
    """Read (and drop) an unread request body so the client sees our 413 instead of a reset."""
    stream = request.environ.get("wsgi.input")
    left = min(request.content_length or 0, limit)
    try:
        while stream is not None and left > 0:
            chunk = stream.read(min(left, 1 << 16))
            if not chunk:
                break
            left -= len(chunk)
    except Exception:  # noqa: BLE001
        pass


def register(app: Flask) -> None:
    @app.errorhandler(KimiError)
    def _kimi(e: KimiError):
        status = http_status(e)
        if status >= 500:
            log.warning("request failed", extra={"code": e.code, "error": e.message})
        return error_response(status, e.code, e.message)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(e):
        _drain()
        limit = app.extensions["kimi"].settings.max_upload_bytes
        return error_response(413, "payload_too_large", f"request body exceeds the upload limit of {limit} bytes")

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        code = _HTTP_CODES.get(e.code or 500, "http_error")
        return error_response(e.code or 500, code, e.description or code)

    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    def _redis_down(e):
        log.error("redis unavailable", extra={"error": str(e)})
        return error_response(503, "unavailable", "the job store is unavailable; try again shortly")

    @app.errorhandler(Exception)
    def _any(e: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error")


__all__ = ["register", "error_response", "ApiError"]
