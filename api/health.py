"""/healthz (process up) and /readyz (Redis, storage, at least one live worker)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    ctx = current_app.extensions["kimi"]
    checks: dict[str, dict] = {}
    try:
        ctx.store.r.ping()
        checks["redis"] = {"ok": True}
    except Exception as e:  # noqa: BLE001
        checks["redis"] = {"ok": False, "error": str(e)}
    try:
        ctx.storage.check()
        checks["storage"] = {"ok": True}
    except Exception as e:  # noqa: BLE001
        checks["storage"] = {"ok": False, "error": str(e)}
    try:
        workers = ctx.store.live_workers()
        checks["workers"] = {"ok": bool(workers), "live": len(workers)}
    except Exception as e:  # noqa: BLE001
        checks["workers"] = {"ok": False, "error": str(e)}
    ok = all(c["ok"] for c in checks.values())
    return jsonify({"status": "ready" if ok else "not_ready", "checks": checks}), (200 if ok else 503)
