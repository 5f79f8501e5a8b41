"""Prometheus /metrics (queue depth, jobs by status, audio seconds, RTF, latency histograms)."""
from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    return Response(generate_latest(current_app.extensions["kimi_metrics"]), mimetype=CONTENT_TYPE_LATEST)
