"""One settings object for the whole job service, read from the environment.

Every knob is a field of :class:`Settings` with its environment variable, default and
meaning in ``SETTINGS_DOC`` (rendered into docs/service.md). API, worker and the
``kimi-asr`` commands all call :func:`get_settings`; tests build their own with
:meth:`Settings.from_env` and an explicit mapping.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path


class SettingsError(ValueError):
    """A setting has an invalid value or settings contradict each other."""


def _bool(v: str) -> bool:
    s = v.strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"not a boolean: {v!r}")


def _floats(v: str) -> tuple[float, ...]:
    return tuple(float(x) for x in v.replace(" ", "").split(",") if x)


def _strs(v: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in v.split(",") if x.strip())


# (field, env var, type parser, default, meaning). The single source of truth.
SETTINGS_DOC: list[tuple[str, str, object, object, str]] = [
    ("redis_url", "REDIS_URL", str, "redis://localhost:6379/0",
     "Redis for job state and the Celery broker. `kimi-asr up` starts its own redis-server when unset."),
    ("api_keys", "KIMI_API_KEYS", _strs, (),
     "Comma-separated API keys (`Authorization: Bearer KEY`). Each key is a tenant and sees only its own jobs."),
    ("webhook_secrets", "KIMI_WEBHOOK_SECRETS", _strs, (),
     "Optional `KEY=whsec_...` pairs. Without one, a key's webhook secret is derived from the key and "
     "`KIMI_WEBHOOK_SIGNING_KEY`; clients read it from `GET /v1/webhook-secret`."),
    ("webhook_signing_key", "KIMI_WEBHOOK_SIGNING_KEY", str, "",
     "Server-side salt for derived webhook secrets (empty: the API key alone derives it)."),
    ("storage_backend", "KIMI_STORAGE", str, "local",
     "`local` (files under `KIMI_DATA_DIR/storage`) or `s3`."),
    ("data_dir", "KIMI_DATA_DIR", str, ".data",
     "Local data directory: storage for the local backend, redis data for `kimi-asr up`, upload spool."),
    ("s3_bucket", "KIMI_S3_BUCKET", str, "", "Bucket for audio and transcripts (S3 backend)."),
    ("s3_prefix", "KIMI_S3_PREFIX", str, "kimi-asr/", "Key prefix inside the bucket."),
    ("s3_endpoint_url", "KIMI_S3_ENDPOINT_URL", str, "",
     "Custom S3 endpoint (MinIO, moto); empty = AWS. Also used to read `s3_uri` inputs, prefixes and manifests."),
    ("s3_region", "KIMI_S3_REGION", str, "us-east-1", "S3 region."),
    ("s3_allowed_input_buckets", "KIMI_S3_INPUT_BUCKETS", _strs, (),
     "Buckets that `s3_uri`/`s3_prefix`/`manifest` may name (empty: any bucket the service credentials can read)."),
    ("max_upload_bytes", "KIMI_MAX_UPLOAD_BYTES", int, 200 * 1024 * 1024,
     "Largest upload or fetched `audio_url` body, bytes; larger gets 413 `payload_too_large`."),
    ("max_audio_seconds", "KIMI_MAX_AUDIO_SECONDS", float, 4 * 3600.0,
     "Longest accepted audio; longer gets 422 `audio_too_long` (checked with audio_io.probe)."),
    ("max_tokens_limit", "KIMI_MAX_TOKENS_LIMIT", int, 7500, "Largest `max_tokens` a request may ask for."),
    ("url_fetch_timeout_s", "KIMI_URL_FETCH_TIMEOUT_S", float, 30.0,
     "Connect/read timeout for fetching `audio_url`."),
    ("allow_private_urls", "KIMI_ALLOW_PRIVATE_URLS", _bool, False,
     "Dev/test only: allow audio/webhook URLs resolving to private, loopback or link-local addresses."),
    ("ssrf_allow_cidrs", "KIMI_SSRF_ALLOW_CIDRS", _strs, (),
     "Narrower dev/test escape hatch: networks (e.g. `127.0.0.0/8`) allowed despite the SSRF guard."),
    ("job_retention_s", "KIMI_JOB_RETENTION_S", int, 7 * 24 * 3600,
     "How long a finished job, its audio and transcript are kept; then the worker's janitor deletes them."),
    ("tombstone_retention_s", "KIMI_TOMBSTONE_RETENTION_S", int, 30 * 24 * 3600,
     "How long the tombstone of a deleted job is kept."),
    ("task_time_limit_s", "KIMI_TASK_TIME_LIMIT_S", float, 3600.0,
     "Longest one transcription may run; the job then fails with `timeout`."),
    ("visibility_timeout_s", "KIMI_VISIBILITY_TIMEOUT_S", float, 7200.0,
     "Redis broker visibility timeout: an unacked message is redelivered after this. Must exceed "
     "the task time limit and the largest webhook retry delay; the worker refuses to start otherwise."),
    ("lease_s", "KIMI_LEASE_S", float, 60.0,
     "A processing job's claim lease, renewed every lease/3 by its worker; a job whose lease expired "
     "and whose worker stopped its heartbeat (worker died) is re-queued by the janitor of any live worker."),
    ("enqueue_grace_s", "KIMI_ENQUEUE_GRACE_S", float, 60.0,
     "A job created but not handed to the broker within this time (the API process died in "
     "between) is enqueued by the janitor of any live worker."),
    ("worker_concurrency", "KIMI_WORKER_CONCURRENCY", int, 8,
     "Jobs one worker process runs at once (Celery threads pool over one shared Transcriber)."),
    ("worker_queues", "KIMI_WORKER_QUEUES", _strs, ("interactive", "webhooks", "bulk"),
     "Queues a worker consumes, strictly in this order of priority."),
    ("task_max_retries", "KIMI_TASK_MAX_RETRIES", int, 5,
     "Retries for transient errors (storage, network) before the job fails."),
    ("retry_backoff_s", "KIMI_RETRY_BACKOFF_S", float, 2.0,
     "First retry delay for transient errors; doubles each retry, capped at 300 s."),
    ("webhook_schedule_s", "KIMI_WEBHOOK_SCHEDULE_S", _floats, (0.0, 5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0),
     "Delay before each webhook attempt, seconds from the previous failure (first = 0: at once). "
     "Length = number of attempts."),
    ("webhook_timeout_s", "KIMI_WEBHOOK_TIMEOUT_S", float, 10.0, "Timeout of one webhook POST."),
    ("sync_timeout_s", "KIMI_SYNC_TIMEOUT_S", float, 300.0,
     "How long `POST /v1/audio/transcriptions` waits for its job; then 504 `timeout` with the job id."),
    ("batch_max_items", "KIMI_BATCH_MAX_ITEMS", int, 10000, "Largest batch."),
    ("page_size_max", "KIMI_PAGE_SIZE_MAX", int, 200, "Largest `limit` of list endpoints (default 50)."),
    ("model_dir", "KIMI_MODEL_DIR", str, "", "Model checkpoint for the worker's Transcriber."),
    ("speech_tokenizer_dir", "KIMI_SPEECH_TOKENIZER_DIR", str, "",
     "GLM-4-Voice speech tokenizer dir (default: inside the model dir)."),
    ("worker_heartbeat_s", "KIMI_WORKER_HEARTBEAT_S", float, 10.0,
     "Workers refresh a liveness key this often (TTL 3x); /readyz needs at least one live worker."),
    ("log_level", "KIMI_LOG_LEVEL", str, "INFO", "Log level; logs are JSON lines on stderr."),
]


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://localhost:6379/0"
    api_keys: tuple[str, ...] = ()
    webhook_secrets: tuple[str, ...] = ()
    webhook_signing_key: str = ""
    storage_backend: str = "local"
    data_dir: str = ".data"
    s3_bucket: str = ""
    s3_prefix: str = "kimi-asr/"
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_allowed_input_buckets: tuple[str, ...] = ()
    max_upload_bytes: int = 200 * 1024 * 1024
    max_audio_seconds: float = 4 * 3600.0
    max_tokens_limit: int = 7500
    url_fetch_timeout_s: float = 30.0
    allow_private_urls: bool = False
    ssrf_allow_cidrs: tuple[str, ...] = ()
    job_retention_s: int = 7 * 24 * 3600
    tombstone_retention_s: int = 30 * 24 * 3600
    task_time_limit_s: float = 3600.0
    visibility_timeout_s: float = 7200.0
    lease_s: float = 60.0
    enqueue_grace_s: float = 60.0
    worker_concurrency: int = 8
    worker_queues: tuple[str, ...] = ("interactive", "webhooks", "bulk")
    task_max_retries: int = 5
    retry_backoff_s: float = 2.0
    webhook_schedule_s: tuple[float, ...] = (0.0, 5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0)
    webhook_timeout_s: float = 10.0
    sync_timeout_s: float = 300.0
    batch_max_items: int = 10000
    page_size_max: int = 200
    model_dir: str = ""
    speech_tokenizer_dir: str = ""
    worker_heartbeat_s: float = 10.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "Settings":
        env = os.environ if env is None else env
        kw: dict = {}
        for name, var, parse, _default, _doc in SETTINGS_DOC:
            if var in env:
                try:
                    kw[name] = parse(env[var])  # type: ignore[operator]
                except (ValueError, TypeError) as e:
                    raise SettingsError(f"{var}={env[var]!r}: {e}") from e
        kw.update(overrides)
        s = cls(**kw)
        s.validate()
        return s

    # --- derived -----------------------------------------------------------
    def validate(self) -> None:
        if self.storage_backend not in ("local", "s3"):
            raise SettingsError(f"KIMI_STORAGE must be local or s3, not {self.storage_backend!r}")
        if self.storage_backend == "s3" and not self.s3_bucket:
            raise SettingsError("KIMI_STORAGE=s3 needs KIMI_S3_BUCKET")
        if not self.webhook_schedule_s:
            raise SettingsError("KIMI_WEBHOOK_SCHEDULE_S needs at least one attempt")
        if self.worker_concurrency < 1:
            raise SettingsError("KIMI_WORKER_CONCURRENCY must be >= 1")
        for pair in self.webhook_secrets:
            if "=" not in pair:
                raise SettingsError(f"KIMI_WEBHOOK_SECRETS entry {pair!r} is not KEY=whsec_...")

    def validate_worker(self) -> None:
        """Refuse to run a worker whose broker would redeliver running or scheduled tasks."""
        longest = max(self.task_time_limit_s, max(self.webhook_schedule_s))
        if self.visibility_timeout_s <= longest:
            raise SettingsError(
                f"KIMI_VISIBILITY_TIMEOUT_S={self.visibility_timeout_s:g} must exceed the task time limit "
                f"(KIMI_TASK_TIME_LIMIT_S={self.task_time_limit_s:g}) and the largest webhook delay "
                f"({max(self.webhook_schedule_s):g} s): otherwise Redis redelivers tasks that are still running")
        if self.lease_s >= self.visibility_timeout_s:
            raise SettingsError("KIMI_LEASE_S must be smaller than KIMI_VISIBILITY_TIMEOUT_S")

    @property
    def storage_root(self) -> Path:
        return Path(self.data_dir) / "storage"

    @staticmethod
    def tenant_of(api_key: str) -> str:
        """Stable tenant id for a key; the key itself is never stored."""
        return "t_" + hashlib.sha256(api_key.encode()).hexdigest()[:16]

    def tenant_for_key(self, api_key: str) -> str | None:
        for k in self.api_keys:
            if hmac.compare_digest(k.encode(), api_key.encode()):
                return self.tenant_of(k)
        return None

    def webhook_secret_for_key(self, api_key: str) -> str:
        """`whsec_<base64>` secret (Standard Webhooks) of one API key."""
        for pair in self.webhook_secrets:
            k, _, secret = pair.partition("=")
            if k == api_key:
                return secret
        raw = hmac.new((self.webhook_signing_key + api_key).encode(), b"kimi-asr webhook secret v1",
                       hashlib.sha256).digest()
        return "whsec_" + base64.b64encode(raw).decode()

    def webhook_secret_for_tenant(self, tenant: str) -> str | None:
        for k in self.api_keys:
            if self.tenant_of(k) == tenant:
                return self.webhook_secret_for_key(k)
        return None


def settings_table_markdown() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for _name, var, _parse, default, doc in SETTINGS_DOC:
        if isinstance(default, tuple):
            default = ",".join(f"{x:g}" if isinstance(x, float) else str(x) for x in default)
        elif isinstance(default, bool):
            default = "1" if default else "0"
        rows.append(f"| `{var}` | `{default}` | {doc} |")
    return "\n".join(rows)


_cached: Settings | None = None


def get_settings() -> Settings:
    global _cached
    if _cached is None:
        _cached = Settings.from_env()
    return _cached


def reset_settings_cache() -> None:
    global _cached
    _cached = None


# Guard against drift between the doc table and the dataclass.
assert [r[0] for r in SETTINGS_DOC] == [f.name for f in fields(Settings) if not f.name.startswith("_")]
