"""Job and batch model with a Redis store.

Layout (prefix ``kimi:``)::

    job:<id>             hash  - the job (status, timestamps, options, error, ...)
    job:<id>:wh          list  - webhook attempts (JSON), oldest first
    lease:<id>           str   - claim token of the worker processing it (TTL = lease)
    processing           set   - ids in status processing (the janitor checks their leases
                                 and their workers' heartbeats)
    tenant:<t>:jobs      zset  - a tenant's job ids (score 0, ids sort by creation time)
    tenant:<t>:batches   zset  - same for batches
    batch:<id>           hash  - batch; batch:<id>:jobs list of its job ids
    idem:<t>:<sha>       str   - Idempotency-Key -> job id
    expiry               zset  - id -> unix time when the janitor deletes it (retention)
    outbox               zset  - id -> creation time, until the broker has its message
    stats                hash  - jobs per current status + processed totals (metrics)
    done:<id>            list  - pushed once when a job ends (wakes synchronous waiters)
    worker:<name>        str   - worker liveness (TTL)

Every status change is one Lua script, so a redelivered or duplicated task can never
complete a job twice: ``claim`` hands out a lease token, ``finish`` only succeeds for
the holder of the live lease (or a still-processing job whose lease lapsed), and only
the winner fires webhooks and bumps batch counters.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import redis

STATUSES = ("queued", "processing", "completed", "failed", "canceled")
TERMINAL = ("completed", "failed", "canceled")
P = "kimi:"


def new_id(kind: str) -> str:
    """Time-sortable id: kind_<12 hex ms><12 hex random>."""
    return f"{kind}_{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


def iso(ts: float | str | None) -> str | None:
    if ts in (None, ""):
        return None
    ts = float(ts)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1000):03d}Z"


_CLAIM = """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return 'missing' end
if st == 'processing' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 'busy' end
elseif st ~= 'queued' then
  return st
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
if st == 'queued' then
  redis.call('HINCRBY', KEYS[4], 'queued', -1)
  redis.call('HINCRBY', KEYS[4], 'processing', 1)
end
if not redis.call('HGET', KEYS[1], 'started_at') then redis.call('HSET', KEYS[1], 'started_at', ARGV[2]) end
redis.call('HSET', KEYS[1], 'status', 'processing', 'worker', ARGV[4], 'progress', '0', 'lease_token', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('SADD', KEYS[3], ARGV[5])
return 'claimed'
"""

# KEYS: lease, job ; ARGV: token, lease_ms. A lease that lapsed (a late renewal on a busy
# host) is taken back if nobody claimed the job since: the job hash remembers the last token.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if holder then return 0 end
if redis.call('HGET', KEYS[2], 'status') ~= 'processing' then return 0 end
if redis.call('HGET', KEYS[2], 'lease_token') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: job, lease, processing, stats, expiry, batch ('' if none), done list
# ARGV: token, new_status, job_id, expire_at, n, k1, v1, ..., kn, vn
_FINISH = """
if redis.call('HGET', KEYS[1], 'status') ~= 'processing' then return 0 end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[5])
for i = 0, n - 1 do redis.call('HSET', KEYS[1], ARGV[6 + 2*i], ARGV[7 + 2*i]) end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[3])
redis.call('HINCRBY', KEYS[4], 'processing', -1)
redis.call('HINCRBY', KEYS[4], ARGV[2], 1)
redis.call('HINCRBY', KEYS[4], ARGV[2] .. '_total', 1)
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[3])
redis.call('LPUSH', KEYS[7], ARGV[2])
redis.call('EXPIRE', KEYS[7], 120)
local r = 1
if KEYS[6] ~= '' and redis.call('EXISTS', KEYS[6]) == 1 then
  local done = redis.call('HINCRBY', KEYS[6], 'done', 1)
  if done == tonumber(redis.call('HGET', KEYS[6], 'total')) then
    redis.call('HSET', KEYS[6], 'status', 'completed', 'finished_at', redis.call('HGET', KEYS[1], 'finished_at'))
    r = 2
  end
end
return r
"""

# KEYS: job, lease, processing, stats ; ARGV: token, job_id, error_code, error_message
_RELEASE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'processing' then return 0 end
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[2])
redis.call('HSET', KEYS[1], 'status', 'queued', 'last_error_code', ARGV[3], 'last_error_message', ARGV[4])
redis.call('HINCRBY', KEYS[4], 'processing', -1)
redis.call('HINCRBY', KEYS[4], 'queued', 1)
return 1
"""

# KEYS: job, lease, processing, stats, expiry, batch('' if none), done ; ARGV: job_id, now, expire_at
_CANCEL = """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return 'missing' end
if st ~= 'queued' and st ~= 'processing' then return st end
redis.call('HSET', KEYS[1], 'status', 'canceled', 'finished_at', ARGV[2])
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('HINCRBY', KEYS[4], st, -1)
redis.call('HINCRBY', KEYS[4], 'canceled', 1)
redis.call('HINCRBY', KEYS[4], 'canceled_total', 1)
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
redis.call('LPUSH', KEYS[7], 'canceled')
redis.call('EXPIRE', KEYS[7], 120)
if KEYS[6] ~= '' and redis.call('EXISTS', KEYS[6]) == 1 then
  local done = redis.call('HINCRBY', KEYS[6], 'done', 1)
  if done == tonumber(redis.call('HGET', KEYS[6], 'total')) then
    redis.call('HSET', KEYS[6], 'status', 'completed', 'finished_at', ARGV[2])
    return 'batch_done:' .. st
  end
end
return st
"""

# Webhook attempt claim on a job or batch hash. KEYS: hash, its attempts list ;
# ARGV: attempt n, now, stale_s. 'claimed': send attempt n. 'resume': attempt n was sent and
# recorded as failed but its worker died before scheduling n+1 (a redelivered message):
# schedule n+1. 'skip': anything else (done, out of order, or another worker is sending it).
# An attempt claimed more than stale_s ago and never recorded (its worker died mid-POST) is
# claimed again: at-least-once, and receivers dedupe on the unchanged webhook-id.
_WH_CLAIM = """
if redis.call('HGET', KEYS[1], 'wh_status') ~= 'pending' then return 'skip' end
local n = tonumber(ARGV[1])
local last = tonumber(redis.call('HGET', KEYS[1], 'wh_claimed') or '0')
local claim = false
if last == n - 1 then
  claim = true
elseif last == n then
  if redis.call('LLEN', KEYS[2]) >= n then return 'resume' end
  local at = tonumber(redis.call('HGET', KEYS[1], 'wh_claimed_at') or '0')
  claim = tonumber(ARGV[2]) - at > tonumber(ARGV[3])
end
if not claim then return 'skip' end
redis.call('HSET', KEYS[1], 'wh_claimed', ARGV[1], 'wh_claimed_at', ARGV[2])
return 'claimed'
"""

# KEYS: job or batch hash ; ARGV: webhook-id, body. Only from 'none' (set at creation).
_WH_PREPARE = """
if redis.call('HGET', KEYS[1], 'wh_status') ~= 'none' then return 0 end
redis.call('HSET', KEYS[1], 'wh_status', 'pending', 'wh_id', ARGV[1], 'wh_body', ARGV[2], 'wh_claimed', '0')
return 1
"""

# attach an uploaded job to an open batch. KEYS: batch, batch jobs ; ARGV: job id, tenant
_ATTACH = """
if redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[2] then return -1 end
if redis.call('HGET', KEYS[1], 'kind') ~= 'uploads' then return -2 end
if redis.call('LLEN', KEYS[2]) >= tonumber(redis.call('HGET', KEYS[1], 'total')) then return -3 end
redis.call('RPUSH', KEYS[2], ARGV[1])
return redis.call('LLEN', KEYS[2])
"""


@dataclass
class Page:
    items: list[dict]
    next_cursor: str | None


class JobStore:
    def __init__(self, client: redis.Redis, settings):
        self.r = client
        self.s = settings
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._finish = client.register_script(_FINISH)
        self._release = client.register_script(_RELEASE)
        self._cancel = client.register_script(_CANCEL)
        self._wh_claim = client.register_script(_WH_CLAIM)
        self._wh_prepare = client.register_script(_WH_PREPARE)
        self._attach = client.register_script(_ATTACH)

    @classmethod
    def from_settings(cls, settings) -> "JobStore":
        return cls(redis.Redis.from_url(settings.redis_url, decode_responses=True,
                                        health_check_interval=30, socket_timeout=30,
                                        socket_connect_timeout=5), settings)

    # --- keys ----------------------------------------------------------------
    @staticmethod
    def jk(job_id: str) -> str:
        return f"{P}job:{job_id}"

    @staticmethod
    def bk(batch_id: str) -> str:
        return f"{P}batch:{batch_id}"

    @staticmethod
    def lease_key(job_id: str) -> str:
        return f"{P}lease:{job_id}"

    # --- create / read -------------------------------------------------------
    def create_job(self, job: dict[str, Any]) -> None:
        job = {k: _enc(v) for k, v in job.items() if v is not None}
        job.setdefault("status", "queued")
        job.setdefault("created_at", repr(time.time()))
        job.setdefault("progress", "0")
        job.setdefault("attempts", "0")
        if job.get("webhook_url"):
            job["wh_status"] = "none"
        with self.r.pipeline() as p:
            p.hset(self.jk(job["id"]), mapping=job)
            p.zadd(f"{P}tenant:{job['tenant']}:jobs", {job["id"]: 0})
            p.hincrby(f"{P}stats", "queued", 1)
            p.zadd(f"{P}outbox", {job["id"]: float(job["created_at"])})
            p.execute()

    def mark_enqueued(self, job_id: str) -> bool:
        """The broker has the job's message. True for the one caller that took it off the outbox."""
        return bool(self.r.zrem(f"{P}outbox", job_id))

    def unenqueued(self, older_than_s: float, limit: int = 500) -> list[str]:
        """Jobs created more than `older_than_s` ago whose enqueue was never confirmed."""
        return self.r.zrangebyscore(f"{P}outbox", "-inf", time.time() - older_than_s, start=0, num=limit)

    def get_job(self, job_id: str) -> dict | None:
        if not isinstance(job_id, str) or len(job_id) > 64:
            return None
        raw = self.r.hgetall(self.jk(job_id))
        return raw or None

    def get_job_for(self, job_id: str, tenant: str) -> dict | None:
        """The job if it exists and belongs to tenant; otherwise None (the API answers 404 for both)."""
        j = self.get_job(job_id)
        return j if j and j.get("tenant") == tenant else None

    def webhook_attempts(self, key: str) -> list[dict]:
        return [json.loads(x) for x in self.r.lrange(f"{key}:wh", 0, -1)]

    def list_jobs(self, tenant: str, status: str | None, limit: int, cursor: str | None) -> Page:
        """Newest first. The cursor is the last id returned; a status filter scans in chunks."""
        key = f"{P}tenant:{tenant}:jobs"
        out: list[dict] = []
        hi = f"({cursor}" if cursor else "+"
        scanned_last = None
        while len(out) < limit:
            ids = self.r.zrevrangebylex(key, hi, "-", start=0, num=max(limit * 2, 50))
            if not ids:
                scanned_last = None
                break
            with self.r.pipeline() as p:
                for i in ids:
                    p.hgetall(self.jk(i))
                rows = p.execute()
            for i, row in zip(ids, rows):
                scanned_last = i
                if not row:
                    self.r.zrem(key, i)       # expired by retention
                    continue
                if status and row.get("status") != status:
                    continue
                out.append(row)
                if len(out) == limit:
                    break
            hi = f"({scanned_last}"
        more = bool(scanned_last) and bool(self.r.zrevrangebylex(key, f"({scanned_last}", "-", start=0, num=1))
        return Page(out, scanned_last if (more and len(out) == limit) or (more and status) else None)

    # --- idempotency -----------------------------------------------------------
    def reserve_idempotency(self, tenant: str, key_hash: str, job_id: str) -> str | None:
        """Returns None if this request owns the key, else the job id that already has it."""
        k = f"{P}idem:{tenant}:{key_hash}"
        if self.r.set(k, job_id, nx=True, ex=int(self.s.job_retention_s)):
            return None
        return self.r.get(k)

    def release_idempotency(self, tenant: str, key_hash: str) -> None:
        self.r.delete(f"{P}idem:{tenant}:{key_hash}")

    # --- worker transitions ------------------------------------------------------
    def claim(self, job_id: str, token: str, worker: str) -> str:
        """'claimed' | 'busy' (another worker holds a live lease) | 'missing' | terminal status."""
        return self._claim(keys=[self.jk(job_id), self.lease_key(job_id), f"{P}processing", f"{P}stats"],
                           args=[token, repr(time.time()), int(self.s.lease_s * 1000), worker, job_id])

    def renew(self, job_id: str, token: str) -> bool:
        return bool(self._renew(keys=[self.lease_key(job_id), self.jk(job_id)], args=[token, int(self.s.lease_s * 1000)]))

    def set_progress(self, job_id: str, progress: float) -> None:
        self.r.hset(self.jk(job_id), "progress", f"{max(0.0, min(1.0, progress)):.3f}")

    def finish(self, job_id: str, token: str, status: str, fields: dict[str, Any]) -> int:
        """0: lost (someone else finished/canceled), 1: done, 2: done and its batch completed."""
        assert status in ("completed", "failed")
        job = self.get_job(job_id) or {}
        now = time.time()
        fields = {"finished_at": repr(now), **fields}
        if status == "completed":
            fields.setdefault("progress", "1")
        flat: list[str] = []
        for k, v in fields.items():
            flat += [k, _enc(v)]
        batch = job.get("batch_id") or ""
        return int(self._finish(
            keys=[self.jk(job_id), self.lease_key(job_id), f"{P}processing", f"{P}stats", f"{P}expiry",
                  self.bk(batch) if batch else "", f"{P}done:{job_id}"],
            args=[token, status, job_id, repr(now + self.s.job_retention_s), len(fields), *flat]))

    def release(self, job_id: str, token: str, code: str, message: str) -> bool:
        """Give a claimed job back to the queue (transient error; the task retries)."""
        return bool(self._release(keys=[self.jk(job_id), self.lease_key(job_id), f"{P}processing", f"{P}stats"],
                                  args=[token, job_id, code, message[:2000]]))

    def fail_unclaimed(self, job_id: str, code: str, message: str) -> int:
        """Fail a job that is queued (e.g. retries exhausted between claims)."""
        token = "fail-" + secrets.token_hex(8)
        if self.claim(job_id, token, "-") != "claimed":
            return 0
        return self.finish(job_id, token, "failed", {"error_code": code, "error_message": message})

    def cancel(self, job_id: str) -> str:
        job = self.get_job(job_id) or {}
        batch = job.get("batch_id") or ""
        now = time.time()
        return self._cancel(
            keys=[self.jk(job_id), self.lease_key(job_id), f"{P}processing", f"{P}stats", f"{P}expiry",
                  self.bk(batch) if batch else "", f"{P}done:{job_id}"],
            args=[job_id, repr(now), repr(now + self.s.tombstone_retention_s)])

    def tombstone(self, job_id: str) -> None:
        """Strip a job down to what a tombstone keeps."""
        keep = {"id", "tenant", "status", "created_at", "started_at", "finished_at", "batch_id", "priority",
                "duration_s", "error_code", "error_message"}
        job = self.get_job(job_id) or {}
        drop = [k for k in job if k not in keep]
        with self.r.pipeline() as p:
            if drop:
                p.hdel(self.jk(job_id), *drop)
            p.hset(self.jk(job_id), mapping={"deleted": "1", "deleted_at": repr(time.time())})
            p.delete(f"{self.jk(job_id)}:wh")
            p.zadd(f"{P}expiry", {job_id: time.time() + self.s.tombstone_retention_s})
            p.execute()

    def wait_done(self, job_id: str, timeout: float) -> bool:
        """Block until the job ends (or timeout). True if it ended."""
        deadline = time.monotonic() + timeout
        while True:
            j = self.get_job(job_id)
            if not j or j.get("status") in TERMINAL:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            # BLPOP wakes at once when the job ends (one waiter); others re-check every second
            self.r.blpop([f"{P}done:{job_id}"], timeout=1)

    # --- webhooks ----------------------------------------------------------------
    def webhook_prepare(self, key: str, msg_id: str, body: str) -> bool:
        """Arm the webhook of a job/batch once; False if it was armed already (a replay)."""
        return bool(self._wh_prepare(keys=[key], args=[msg_id, body]))

    def webhook_claim(self, key: str, attempt: int) -> str:
        """'claimed' | 'resume' | 'skip' (see _WH_CLAIM)."""
        stale_s = 3 * self.s.webhook_timeout_s + 30
        return self._wh_claim(keys=[key, f"{key}:wh"], args=[attempt, repr(time.time()), stale_s])

    def webhook_record(self, key: str, attempt: dict, final_status: str | None) -> None:
        with self.r.pipeline() as p:
            p.rpush(f"{key}:wh", json.dumps(attempt))
            if final_status:
                p.hset(key, "wh_status", final_status)
            p.execute()

    # --- batches -----------------------------------------------------------------
    def create_batch(self, batch: dict[str, Any], job_ids: list[str]) -> None:
        batch = {k: _enc(v) for k, v in batch.items() if v is not None}
        batch.setdefault("status", "processing")
        batch.setdefault("created_at", repr(time.time()))
        batch.setdefault("done", "0")
        if batch.get("webhook_url"):
            batch["wh_status"] = "none"
        with self.r.pipeline() as p:
            p.hset(self.bk(batch["id"]), mapping=batch)
            if job_ids:
                p.rpush(f"{self.bk(batch['id'])}:jobs", *job_ids)
            p.zadd(f"{P}tenant:{batch['tenant']}:batches", {batch["id"]: 0})
            p.execute()

    def attach_to_batch(self, batch_id: str, job_id: str, tenant: str) -> int:
        return int(self._attach(keys=[self.bk(batch_id), f"{self.bk(batch_id)}:jobs"], args=[job_id, tenant]))

    def get_batch_for(self, batch_id: str, tenant: str) -> dict | None:
        if not isinstance(batch_id, str) or len(batch_id) > 64:
            return None
        b = self.r.hgetall(self.bk(batch_id))
        return b if b and b.get("tenant") == tenant else None

    def batch_job_ids(self, batch_id: str) -> list[str]:
        return self.r.lrange(f"{self.bk(batch_id)}:jobs", 0, -1)

    def batch_counts(self, batch_id: str) -> dict[str, int]:
        ids = self.batch_job_ids(batch_id)
        counts = {s: 0 for s in STATUSES}
        with self.r.pipeline() as p:
            for i in ids:
                p.hget(self.jk(i), "status")
            for st in p.execute():
                if st in counts:
                    counts[st] += 1
        return counts

    def list_batches(self, tenant: str, limit: int, cursor: str | None) -> Page:
        key = f"{P}tenant:{tenant}:batches"
        ids = self.r.zrevrangebylex(key, f"({cursor}" if cursor else "+", "-", start=0, num=limit + 1)
        rows = [self.r.hgetall(self.bk(i)) for i in ids[:limit]]
        return Page([r for r in rows if r], ids[limit - 1] if len(ids) > limit else None)

    # --- janitor / liveness -------------------------------------------------------
    def orphaned_jobs(self) -> list[str]:
        """Jobs in processing whose lease lapsed *and* whose worker's heartbeat is gone.

        A lapsed lease alone is not proof of death: a busy host can renew late, and the
        worker takes its lease back (``renew``). Stealing such a job would run it twice.
        A job whose live worker somehow dropped it still comes back through the broker's
        visibility timeout (``claim`` accepts a lapsed lease).
        """
        ids = list(self.r.smembers(f"{P}processing"))
        if not ids:
            return []
        with self.r.pipeline() as p:
            for i in ids:
                p.exists(self.lease_key(i))
                p.hget(self.jk(i), "worker")
            rows = p.execute()
        out = []
        for i, alive, worker in zip(ids, rows[0::2], rows[1::2]):
            if alive or (worker and self.r.exists(f"{P}worker:{worker}")):
                continue
            if self.r.set(f"{P}requeue:{i}", "1", nx=True, ex=max(1, int(self.s.lease_s))):
                out.append(i)
        return out

    def expired(self, now: float | None = None, limit: int = 200) -> list[str]:
        return self.r.zrangebyscore(f"{P}expiry", "-inf", now or time.time(), start=0, num=limit)

    def purge(self, job_id: str) -> dict | None:
        """Delete a job (retention). Returns the hash that was deleted."""
        job = self.get_job(job_id)
        with self.r.pipeline() as p:
            p.delete(self.jk(job_id), f"{self.jk(job_id)}:wh")
            p.zrem(f"{P}expiry", job_id)
            p.zrem(f"{P}outbox", job_id)
            if job:
                p.zrem(f"{P}tenant:{job['tenant']}:jobs", job_id)
                if job.get("status") in STATUSES:
                    p.hincrby(f"{P}stats", job["status"], -1)
            p.execute()
        return job

    def heartbeat(self, worker: str, ttl: float, info: dict | None = None) -> None:
        self.r.set(f"{P}worker:{worker}", json.dumps(info or {}), ex=max(1, int(ttl)))

    def live_workers(self) -> list[str]:
        return [k[len(P) + 7:] for k in self.r.scan_iter(f"{P}worker:*", count=100)]

    def stats(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.r.hgetall(f"{P}stats").items()}

    def incr_stat(self, name: str, amount: float) -> None:
        self.r.hincrbyfloat(f"{P}stats", name, amount)


def _enc(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def job_view(job: dict, attempts: list[dict] | None = None, base_url: str = "") -> dict:
    """Public JSON of a job."""
    jid = job["id"]
    out: dict[str, Any] = {
        "id": jid,
        "object": "job",
        "status": job.get("status"),
        "status_url": f"{base_url}/v1/jobs/{jid}",
        "progress": float(job.get("progress") or 0),
        "priority": job.get("priority"),
        "created_at": iso(job.get("created_at")),
        "started_at": iso(job.get("started_at")),
        "finished_at": iso(job.get("finished_at")),
        "audio_duration_s": float(job["duration_s"]) if job.get("duration_s") else None,
        "batch_id": job.get("batch_id") or None,
        "error": ({"code": job["error_code"], "message": job.get("error_message", "")}
                  if job.get("error_code") else None),
    }
    if job.get("deleted") == "1":
        out["deleted"] = True
        out["deleted_at"] = iso(job.get("deleted_at"))
        return out
    out.update({
        "source": job.get("source"),
        "filename": job.get("filename") or None,
        "options": json.loads(job.get("options") or "{}"),
        "metadata": json.loads(job.get("metadata") or "null"),
        "attempts": int(job.get("attempts") or 0),
        "transcript_url": f"{base_url}/v1/jobs/{jid}/transcript" if job.get("status") == "completed" else None,
    })
    if job.get("webhook_url"):
        out["webhook"] = {"url": job["webhook_url"], "status": job.get("wh_status", "none"),
                          "attempts": attempts or []}
    return out
