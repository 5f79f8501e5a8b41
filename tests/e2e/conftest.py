"""End-to-end fixtures: real redis-server, moto S3 over HTTP, the API over real HTTP
(werkzeug server thread), real worker processes (`python -m worker`) running the real vLLM
CPU engine on the tiny checkpoint. No fakes. Worker processes are shared by the whole
session (engine start ~25 s each); tests that kill one restart it.
"""
from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf
from helpers import Receiver, wait_for

REPO = Path(__file__).resolve().parents[2]
KEY_A, KEY_B = "e2e-key-alice", "e2e-key-bob"
BUCKET, INPUT_BUCKET = "kimi-e2e", "kimi-input"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wav(seconds: float, freq: float = 300.0, sr: int = 16000, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(t.shape)
    buf = io.BytesIO()
    sf.write(buf, y.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def redis_url(e2e_dir):
    exe = shutil.which("redis-server")
    if not exe:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    p = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                          "--dir", str(e2e_dir), "--loglevel", "warning"])
    url = f"redis://127.0.0.1:{port}/0"
    import redis
    wait_for(lambda: _ping(redis, url), 15, what="redis-server")
    yield url
    p.terminate()
    p.wait(10)


def _ping(redis, url):
    try:
        return redis.Redis.from_url(url).ping()
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    import boto3
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    s3.create_bucket(Bucket=INPUT_BUCKET)
    yield url
    server.stop()


@pytest.fixture(scope="session")
def s3(s3_endpoint):
    import boto3
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture(scope="session")
def env(tiny_ckpt, redis_url, s3_endpoint, e2e_dir) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("KIMI_")}
    e.update({
        "REDIS_URL": redis_url,
        "KIMI_API_KEYS": f"{KEY_A},{KEY_B}",
        "KIMI_STORAGE": "s3", "KIMI_S3_BUCKET": BUCKET, "KIMI_S3_PREFIX": "svc/",
        "KIMI_S3_ENDPOINT_URL": s3_endpoint, "KIMI_S3_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "KIMI_DATA_DIR": str(e2e_dir / "data"),
        "KIMI_SSRF_ALLOW_CIDRS": "127.0.0.0/8",          # receivers/servers on loopback; 10/8, 169.254/16 stay blocked
        "KIMI_WEBHOOK_SCHEDULE_S": "0,0.5,0.5,1",
        "KIMI_LEASE_S": "3",
        "KIMI_TASK_TIME_LIMIT_S": "25", "KIMI_VISIBILITY_TIMEOUT_S": "35",
        "KIMI_WORKER_CONCURRENCY": "4", "KIMI_WORKER_HEARTBEAT_S": "1",
        "KIMI_MAX_UPLOAD_BYTES": "1000000", "KIMI_MAX_AUDIO_SECONDS": "20",
        "KIMI_SYNC_TIMEOUT_S": "60", "KIMI_RETRY_BACKOFF_S": "0.2",
        "KIMI_MODEL_DIR": str(tiny_ckpt.model_dir),
        "KIMI_SPEECH_TOKENIZER_DIR": str(tiny_ckpt.speech_tokenizer_dir),
        "KIMI_LOG_LEVEL": "INFO",
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    })
    return e


@pytest.fixture(scope="session")
def settings(env):
    from service.settings import Settings
    return Settings.from_env(env)


@pytest.fixture(scope="session")
def store(settings):
    from service.jobs import JobStore
    return JobStore.from_settings(settings)


@pytest.fixture(scope="session")
def api_url(settings, env):
    """The API on real HTTP (werkzeug threaded server in this process)."""
    from werkzeug.serving import make_server

    from api.app import create_app
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(k, env[k])
    app = create_app(settings, configure_logging=False)
    srv = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_port}"
    yield url
    srv.shutdown()


class Workers:
    """Real `python -m worker` processes, each in its own process group."""

    def __init__(self, env: dict, logdir: Path, store):
        self.env, self.logdir, self.store = env, logdir, store
        self.procs: dict[str, subprocess.Popen] = {}
        self.starts = 0

    def pid_of(self, name: str) -> int:
        return self.procs[name].pid

    def alive(self, name: str) -> bool:
        p = self.procs.get(name)
        return p is not None and p.poll() is None

    def start(self, name: str) -> None:
        self.starts += 1
        log = open(self.logdir / f"worker-{name}-{self.starts}.log", "wb")
        p = subprocess.Popen([sys.executable, "-m", "worker", "-n", f"{name}@e2e"], env=self.env, cwd=str(REPO),
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = p
        wait_for(lambda: self._ready(p), 240, 0.5, what=f"worker {name} to start (log: {log.name})")

    def _ready(self, p: subprocess.Popen) -> bool:
        if p.poll() is not None:
            raise AssertionError(f"worker exited with {p.returncode} during start-up")
        return any(w.endswith(f":{p.pid}") for w in self.store.live_workers())

    def ensure(self, name: str) -> None:
        if not self.alive(name):
            self.start(name)

    def kill(self, name: str) -> None:
        """SIGKILL the worker and its engine process group: a lost machine."""
        p = self.procs[name]
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(30)
        self.store.r.delete(f"kimi:worker:{_hostname()}:{p.pid}")

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def _hostname() -> str:
    return socket.gethostname()


@pytest.fixture(scope="session")
def workers(env, e2e_dir, store):
    w = Workers(env, e2e_dir, store)
    yield w
    w.stop_all()


@pytest.fixture
def worker(workers):
    """At least the main worker process is running."""
    workers.ensure("w1")
    return workers


class Client:
    def __init__(self, base: str, key: str):
        self.base = base
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Bearer {key}"

    def upload(self, data: bytes, name: str = "a.wav", **form):
        form = {k: str(v) for k, v in form.items() if v is not None}
        return self.s.post(f"{self.base}/v1/jobs", files={"file": (name, data, "audio/wav")}, data=form, timeout=60)

    def get(self, path: str, **kw):
        return self.s.get(self.base + path, timeout=60, **kw)

    def post(self, path: str, **kw):
        return self.s.post(self.base + path, timeout=120, **kw)

    def wait(self, job_id: str, timeout: float = 120) -> dict:
        def done():
            j = self.get(f"/v1/jobs/{job_id}").json()
            return j if j["status"] in ("completed", "failed", "canceled") else None
        return wait_for(done, timeout, 0.1, what=f"job {job_id}")


@pytest.fixture(scope="session")
def alice(api_url):
    return Client(api_url, KEY_A)


@pytest.fixture(scope="session")
def bob(api_url):
    return Client(api_url, KEY_B)


@pytest.fixture
def receiver_factory():
    made = []

    def make(fail_first: int = 0) -> Receiver:
        r = Receiver(fail_first)
        made.append(r)
        return r
    yield make
    for r in made:
        r.close()
