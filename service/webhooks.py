"""Standard Webhooks (https://www.standardwebhooks.com) signing and delivery.

Each event is POSTed as JSON with three headers:

* ``webhook-id``: ``msg_<job or batch id>_<event>``, the same on every retry (receivers dedupe on it);
* ``webhook-timestamp``: unix seconds of this attempt;
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>``, where the
  secret is the API key's ``whsec_<base64>`` secret (``GET /v1/webhook-secret``).

Delivery: attempt *n* waits ``KIMI_WEBHOOK_SCHEDULE_S[n-1]`` seconds after the previous failure
(default 0, 5 s, 30 s, 2 min, 10 min, 30 min, 1 h: 7 attempts over ~1.7 h). A 2xx answer is
success; anything else (or a timeout / connection error) schedules the next attempt; after
the last one the webhook is marked ``failed``. Every attempt is recorded on the job (or
batch). The body is frozen at the first attempt so every retry sends identical bytes.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from service.ssrf import SsrfPolicy, safe_request

TOLERANCE_S = 5 * 60


def _secret_bytes(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):])
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    if isinstance(body, str):
        body = body.encode()
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(_secret_bytes(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class VerificationError(Exception):
    pass


def verify(secret: str, headers, body: bytes | str, now: float | None = None) -> dict:
    """Receiver side: check the signature and timestamp; return the decoded payload."""
    h = {k.lower(): v for k, v in dict(headers).items()}
    try:
        msg_id, ts, sigs = h["webhook-id"], int(h["webhook-timestamp"]), h["webhook-signature"]
    except (KeyError, ValueError) as e:
        raise VerificationError(f"missing or bad webhook headers: {e}") from e
    if abs((now or time.time()) - ts) > TOLERANCE_S:
        raise VerificationError("timestamp outside tolerance")
    expected = sign(secret, msg_id, ts, body)
    for s in sigs.split(" "):
        if hmac.compare_digest(s.strip(), expected):
            return json.loads(body)
    raise VerificationError("no matching signature")


def build_event(event_type: str, data: dict) -> str:
    return json.dumps({"type": event_type, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "data": data}, separators=(",", ":"), sort_keys=True)


def deliver_once(url: str, secret: str, msg_id: str, body: str, policy: SsrfPolicy,
                 timeout: float) -> dict:
    """One POST. Returns the attempt record (never raises for delivery failures)."""
    ts = int(time.time())
    headers = {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(ts),
               "webhook-signature": sign(secret, msg_id, ts, body)}
    t0 = time.monotonic()
    rec: dict = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)), "status_code": None,
                 "success": False, "error": None}
    try:
        resp = safe_request("POST", url, policy, body=body.encode(), headers=headers, timeout=timeout)
        rec["status_code"] = resp.status
        rec["success"] = 200 <= resp.status < 300
        if not rec["success"]:
            rec["error"] = f"HTTP {resp.status}"
    except Exception as e:  # noqa: BLE001 - any failure is just a failed attempt
        rec["error"] = f"{type(e).__name__}: {e}"[:500]
    rec["duration_ms"] = round((time.monotonic() - t0) * 1000, 1)
    return rec
