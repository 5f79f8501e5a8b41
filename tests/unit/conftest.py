"""Unit-test harness: fakeredis store, local storage, a stub Transcriber and an inline queue.

Only unit tests use stubs; tests/e2e runs the real engine, redis-server and moto.
"""
from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field

import fakeredis
import numpy as np
import pytest
import soundfile as sf

from service.jobs import JobStore
from service.settings import Settings
from service.storage import LocalStorage
from helpers import Receiver

KEY_A, KEY_B = "key-alice", "key-bob"
AUTH_A = {"Authorization": f"Bearer {KEY_A}"}
AUTH_B = {"Authorization": f"Bearer {KEY_B}"}


def wav_bytes(seconds: float = 0.5, sr: int = 16000, freq: float = 440.0) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@dataclass
class Seg:
    start_s: float
    end_s: float
    text: str
    token_ids: list


@dataclass
class Result:
    text: str
    token_ids: list
    duration_s: float
    segments: list
    timings: dict = field(default_factory=dict)


@dataclass
class Opts:
    instruction: str | None = "Please transcribe the following audio:"
    max_tokens: int | None = None
    temperature: float = 0.0
    repetition_penalty: float = 1.0
    ignore_eos: bool = False


class StubTranscriber:
    """Deterministic stand-in: text depends on the audio length and the options."""

    def __init__(self):
        self.calls = []
        self.fail_with: list[Exception] = []
        self.lock = threading.Lock()

    def transcribe(self, audio, options=None, *, priority=0, progress=None, timeout=None):
        with self.lock:
            self.calls.append((audio, options, priority))
            if self.fail_with:
                raise self.fail_with.pop(0)
        info = sf.info(audio)
        if progress:
            progress(0.5)
            progress(1.0)
        d = float(info.duration)
        text = f"stub {d:.2f}s"
        return Result(text=text, token_ids=[1, 2, 3], duration_s=d,
                      segments=[Seg(0.0, d / 2, "stub", [1]), Seg(d / 2, d, f"{d:.2f}s", [2, 3])])


class Harness:
    def __init__(self, tmp_path, **overrides):
        base = dict(api_keys=(KEY_A, KEY_B), data_dir=str(tmp_path), ssrf_allow_cidrs=("127.0.0.0/8",),
                    webhook_schedule_s=(0.0, 0.0, 0.0), lease_s=2.0, max_upload_bytes=2_000_000,
                    max_audio_seconds=60.0, sync_timeout_s=5.0, log_level="WARNING")
        base.update(overrides)
        self.settings = Settings.from_env({}, **base)
        self.redis = fakeredis.FakeRedis(decode_responses=True)
        self.store = JobStore(self.redis, self.settings)
        self.storage = LocalStorage(self.settings.storage_root)
        self.sent: list[tuple] = []
        self.sent_lock = threading.Lock()
        self.transcriber = StubTranscriber()
        from worker.tasks import Deps
        self.deps = Deps(settings=self.settings, store=self.store, storage=self.storage, s3input=None,
                         transcriber=lambda: self.transcriber, send=self.send, worker_id="unit:1",
                         options_cls=Opts)
        from api.app import create_app
        self.app = create_app(self.settings, store=self.store, storage=self.storage, send=self.send,
                              configure_logging=False)
        self.client = self.app.test_client()

    def send(self, name, args, queue, countdown=0.0):
        with self.sent_lock:
            self.sent.append((name, list(args), queue, countdown))

    def drain(self, max_rounds: int = 100) -> list:
        """Run every queued task inline (like a worker), including those they enqueue."""
        from worker.tasks import deliver_webhook, process_job
        done = []
        for _ in range(max_rounds):
            with self.sent_lock:
                if not self.sent:
                    break
                name, args, queue, _cd = self.sent.pop(0)
            if name == "kimi.transcribe":
                retries = 0
                while True:
                    out = process_job(self.deps, args[0], retries=retries)
                    if out != "retry":
                        break
                    retries += 1
                done.append((name, args[0], out))
            else:
                done.append((name, args[0], deliver_webhook(self.deps, *args)))
        return done


@pytest.fixture
def h(tmp_path):
    return Harness(tmp_path)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


