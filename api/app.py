"""Flask application factory. `gunicorn 'api.app:create_app()'`."""
from __future__ import annotations

import time

from flask import Flask, g, request

from service.jobs import JobStore
from service.logs import setup_logging
from service.metrics import make_registry
from service.settings import Settings, get_settings
from service.storage import S3Input, make_storage
from service.submit import Ctx


def _celery_send(settings: Settings):
    from worker.celery_app import make_app
    capp = make_app(settings)

    def send(name: str, args: list, queue: str, countdown: float = 0.0) -> None:
        capp.send_task(name, args=args, queue=queue, countdown=countdown or None)
    return send


def create_app(settings: Settings | None = None, *, store: JobStore | None = None, storage=None,
               s3input=None, send=None, configure_logging: bool = True) -> Flask:
    s = settings or get_settings()
    if configure_logging:
        setup_logging(s.log_level)
    app = Flask("kimi_asr")
    # multipart bodies above 500 KB are spooled to a temp file by werkzeug, never held in memory
    app.config["MAX_CONTENT_LENGTH"] = s.max_upload_bytes + 1024 * 1024   # + room for the form parts
    app.json.sort_keys = False
    store = store or JobStore.from_settings(s)
    ctx = Ctx(settings=s, store=store, storage=storage or make_storage(s), s3input=s3input or S3Input(s),
              send=send or _celery_send(s))
    app.extensions["kimi"] = ctx
    registry, req_counter, req_latency = make_registry(store.r)
    app.extensions["kimi_metrics"] = registry

    from api import batches, errors, health, jobs, metrics_bp, openai_compat, openapi
    errors.register(app)
    for bp in (jobs.bp, batches.bp, openai_compat.bp, health.bp, metrics_bp.bp, openapi.bp):
        app.register_blueprint(bp)

    @app.before_request
    def _t0():
        g.t0 = time.perf_counter()

    @app.after_request
    def _observe(resp):
        ep = request.url_rule.rule if request.url_rule else "unmatched"
        req_counter.labels(request.method, ep, str(resp.status_code)).inc()
        req_latency.labels(request.method, ep).observe(time.perf_counter() - g.get("t0", time.perf_counter()))
        return resp

    return app
