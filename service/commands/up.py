"""`kimi-asr up`: the whole local stack in the foreground.

Starts (as child processes, each in its own session so Ctrl-C is handled here, in order):
a redis-server under ``DATA_DIR/redis`` (AOF on) unless ``REDIS_URL`` is set, one Celery
worker (``python -m worker``: one Transcriber, threads pool), and the API (gunicorn, or
werkzeug if gunicorn is missing). Storage is ``DATA_DIR/storage`` unless ``KIMI_STORAGE=s3``.
Without ``--model``/``KIMI_MODEL_DIR`` it builds a tiny *random* checkpoint
(``python -m kimi_model.tiny``) and says loudly that it is not a real model. Without
``KIMI_API_KEYS`` it generates a key (kept in ``DATA_DIR/api_key``) and prints it.
Ctrl-C / SIGTERM: API, then worker (warm shutdown: running jobs finish), then Redis.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BANNER = "=" * 78


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("up", help="run API + worker + Redis locally in the foreground")
    p.add_argument("--host", default=os.environ.get("KIMI_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("KIMI_PORT", "8000")))
    p.add_argument("--data-dir", default=os.environ.get("KIMI_DATA_DIR", ".data"))
    p.add_argument("--model", default=os.environ.get("KIMI_MODEL_DIR", ""), help="model checkpoint dir")
    p.add_argument("--speech-tokenizer", default=os.environ.get("KIMI_SPEECH_TOKENIZER_DIR", ""),
                   help="GLM-4-Voice tokenizer dir (default: inside the model dir)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (each loads the model)")
    p.set_defaults(func=run)


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if `kimi-asr up` itself dies (even by SIGKILL)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: best effort only
        pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _wait_redis(url: str, proc: subprocess.Popen | None, timeout: float = 20) -> None:
    import redis
    deadline = time.monotonic() + timeout
    while True:
        try:
            redis.Redis.from_url(url).ping()
            return
        except Exception:  # noqa: BLE001
            if proc is not None and proc.poll() is not None:
                raise SystemExit(f"redis-server exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise SystemExit(f"redis at {url} not reachable")
            time.sleep(0.1)


def ensure_model(args, data_dir: Path) -> tuple[str, str]:
    if args.model:
        return args.model, args.speech_tokenizer
    out = data_dir / "tiny-model"
    _say(f"no --model / KIMI_MODEL_DIR: generating a tiny random checkpoint in {out} ...")
    subprocess.run([sys.executable, "-m", "kimi_model.tiny", str(out)], check=True, stdout=subprocess.DEVNULL)
    _say(f"\n{BANNER}\n!!! NOT A REAL MODEL: serving a tiny RANDOMLY INITIALISED checkpoint.\n"
         f"!!! Transcripts will be gibberish. Pass --model /path/to/Kimi-Audio-7B-Instruct\n"
         f"!!! (and --speech-tokenizer /path/to/glm-4-voice-tokenizer) for real output.\n{BANNER}\n")
    return str(out), str(out / "glm-4-voice-tokenizer")


def api_key(data_dir: Path) -> tuple[str, bool]:
    if os.environ.get("KIMI_API_KEYS"):
        return os.environ["KIMI_API_KEYS"], False
    f = data_dir / "api_key"
    if not f.exists():
        f.write_text("kimi-" + secrets.token_urlsafe(24) + "\n")
        f.chmod(0o600)
    return f.read_text().strip(), True


class Stack:
    def __init__(self):
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.stopping = False
        self.forced = False

    def start(self, name: str, cmd: list[str], env: dict, **kw) -> subprocess.Popen:
        p = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_die_with_parent, **kw)
        self.procs.append((name, p))
        return p

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        # API first (no new jobs), then workers (warm shutdown: running jobs finish), Redis last
        for name, p in self.procs[::-1]:
            if p.poll() is None and not self.forced:
                _say(f"stopping {name} (pid {p.pid}) ...")
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=90 if name.startswith("worker") else 20)
                except subprocess.TimeoutExpired:
                    _say(f"{name} did not stop in time; killing it")
            self._kill_group(p)

    def _kill_group(self, p: subprocess.Popen) -> None:
        """SIGKILL whatever is left in the child's process group (e.g. vLLM's EngineCore)."""
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def force(self) -> None:
        self.forced = True
        for _name, p in self.procs:
            self._kill_group(p)


def run(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["KIMI_DATA_DIR"] = str(data_dir)
    model, tok = ensure_model(args, data_dir)
    env["KIMI_MODEL_DIR"] = model
    if tok:
        env["KIMI_SPEECH_TOKENIZER_DIR"] = tok
    keys, generated = api_key(data_dir)
    env["KIMI_API_KEYS"] = keys
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

    stack = Stack()

    class Stop(Exception):
        pass

    def on_signal(signum, _frame):
        if stack.stopping:
            _say(f"received {signal.Signals(signum).name} again: killing everything now")
            stack.force()
            return
        _say(f"\nreceived {signal.Signals(signum).name}; shutting down (again to force) ...")
        raise Stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        redis_proc = None
        if not env.get("REDIS_URL"):
            if not shutil.which("redis-server"):
                raise SystemExit("redis-server not found (apt-get install redis-server) and REDIS_URL is unset")
            port = free_port()
            (data_dir / "redis").mkdir(exist_ok=True)
            redis_proc = stack.start("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                               "--dir", str(data_dir / "redis"), "--appendonly", "yes",
                                               "--save", "", "--loglevel", "warning"], env)
            env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        _wait_redis(env["REDIS_URL"], redis_proc)
        for i in range(args.workers):
            stack.start(f"worker-{i}", [sys.executable, "-m", "worker", "-n", f"kimi{i}@%h"], env)
        if shutil.which("gunicorn"):
            api_cmd = ["gunicorn", "--bind", f"{args.host}:{args.port}", "--workers", "1", "--threads", "32",
                       "--timeout", "0", "--graceful-timeout", "10", "--access-logfile", "-",
                       "api.app:create_app()"]
        else:
            api_cmd = [sys.executable, "-c", "from api.app import create_app; "
                       f"create_app().run(host={args.host!r}, port={args.port}, threaded=True)"]
        stack.start("api", api_cmd, env)
        url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '') else args.host}:{args.port}"
        wait_ready(url, stack.procs)
        _say(f"\n{BANNER}\nkimi-asr is up: {url}   (OpenAPI: {url}/openapi.json)\n"
             + (f"API key (generated, saved in {data_dir / 'api_key'}):\n  {keys}\n" if generated
                else "API keys: from KIMI_API_KEYS\n")
             + f"try:  KIMI_URL={url} KIMI_API_KEY={keys.split(',')[0]} kimi-asr submit a.wav --wait\n"
             + f"Ctrl-C stops everything.\n{BANNER}")
        while True:
            for name, p in stack.procs:
                if p.poll() is not None:
                    _say(f"{name} exited with code {p.returncode}; stopping the stack")
                    stack.stop()
                    return 1
            time.sleep(0.5)
    except Stop:
        return 0
    finally:
        stack.stop()
        _say("stopped")


def wait_ready(url: str, procs: list[tuple[str, subprocess.Popen]], timeout: float = 600,
               hint: str = "") -> None:
    """Poll ``url``/readyz until 200; stop at once if one of ``procs`` exits meanwhile."""
    import requests
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, p in procs:
            if p.poll() is not None:
                raise SystemExit(f"{name} exited with code {p.returncode} during start-up{hint}")
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the stack did not become ready in {timeout:.0f} s{hint}")
