"""Bearer API keys from settings. Each key is a tenant (g.tenant); others' objects are 404."""
from __future__ import annotations

from flask import current_app, g, request

from service.submit import ApiError


def authenticate() -> None:
    s = current_app.extensions["kimi"].settings
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError("unauthorized", "missing API key: send 'Authorization: Bearer <key>'", 401)
    tenant = s.tenant_for_key(key.strip())
    if tenant is None:
        raise ApiError("unauthorized", "invalid API key", 401)
    g.api_key = key.strip()
    g.tenant = tenant
