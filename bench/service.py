"""Through-the-service benchmark: HTTP API -> Redis -> S3 -> worker -> stored transcript.

    python bench/service.py --clip-s 30 --n-files 8 --concurrency 8              # system ours
    python bench/service.py --system naive_worker --clip-s 30 --n-files 8        # one job at a time

The stack is the real one, started by ``kimi-asr up`` (service/commands/up.py: its own
redis-server, one ``python -m worker`` process with one Transcriber, gunicorn API) with
S3 storage on a moto server in this process. Nothing is stubbed.

Records (bench "service"):
* scenario "bulk": --n-files files uploaded to the input bucket, then ONE
  ``POST /v1/batches {"s3_prefix"}``; wall = that POST until the batch is completed;
  p50/p95 = per-job finished_at - created_at. For system ours the same files then run
  in-process (bench/transcriber.py's measure_inprocess, same concurrency, fresh engine)
  and ``service_overhead`` = 1 - RTFx(service) / RTFx(in-process).
* scenario "idle": --latency-requests 10-s clips, each ``POST /v1/jobs`` (upload,
  interactive) then polled every 20 ms until completed, one at a time.
* scenario "under_load": the same with other 10-s clips while another bulk batch runs.

naive_worker = the same worker with KIMI_WORKER_CONCURRENCY=1: one job at a time per
engine, as a Celery prefork worker (one engine per child, one task per child) runs.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.common import (  # noqa: E402
    WARMUP_FILES,
    ResourceMeter,
    add_checkpoint_args,
    add_common_args,
    emit,
    ensure_audio_set,
    jsonl_path,
    make_record,
    select_checkpoint,
)
from bench.transcriber import measure_inprocess, open_transcriber, options_for  # noqa: E402

API_KEY = "bench-key"
BUCKET, INPUT_BUCKET = "kimi-bench", "kimi-bench-input"
DONE = ("completed", "failed", "canceled")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system", choices=("ours", "naive_worker"), default="ours")
    add_checkpoint_args(ap)
    ap.add_argument("--clip-s", type=float, default=30.0)
    ap.add_argument("--n-files", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=8, help="KIMI_WORKER_CONCURRENCY for system ours")
    ap.add_argument("--latency-requests", type=int, default=3, help="10-s clips for idle/under-load (0: skip)")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--stop-on-eos", action="store_true")
    ap.add_argument("--no-inprocess", action="store_true", help="skip the in-process comparison run")
    ap.add_argument("--timeout-s", type=float, default=540.0, help="give up waiting for a batch after this")
    add_common_args(ap)
    return ap.parse_args(argv)


# =====================================================================================
# the stack: moto S3 here, everything else via `kimi-asr up`
# =====================================================================================

class Stack:
    """moto S3 (thread) + ``kimi-asr up`` (redis-server, worker, gunicorn) as a child."""

    def __init__(self, model_dir: Path, glm_dir: Path | None, concurrency: int, workdir: Path):
        from moto.server import ThreadedMotoServer

        from service.commands.up import free_port, wait_ready

        self.workdir = workdir
        for k, v in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                     ("AWS_DEFAULT_REGION", "us-east-1")):
            os.environ.setdefault(k, v)
        s3_port = free_port()
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
        self.moto.start()
        self.s3_url = f"http://127.0.0.1:{s3_port}"
        self.s3 = self._boto()
        for b in (BUCKET, INPUT_BUCKET):
            self.s3.create_bucket(Bucket=b)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}   # up starts its own redis-server
        env.update({
            "KIMI_API_KEYS": API_KEY, "KIMI_STORAGE": "s3", "KIMI_S3_BUCKET": BUCKET,
            "KIMI_S3_ENDPOINT_URL": self.s3_url, "KIMI_S3_REGION": "us-east-1",
            "KIMI_WORKER_CONCURRENCY": str(concurrency), "KIMI_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        })
        cmd = [sys.executable, "-m", "kimi_model.cli", "up", "--port", str(port), "--data-dir", str(workdir),
               "--model", str(model_dir)] + (["--speech-tokenizer", str(glm_dir)] if glm_dir else [])
        self.log = open(workdir / "stack.log", "wb")
        self.proc = subprocess.Popen(cmd, env=env, cwd=str(REPO_ROOT), stdout=self.log, stderr=subprocess.STDOUT)
        wait_ready(self.url, [("kimi-asr up", self.proc)], hint=f"; see {self.log.name}")
        from service.commands.client import ApiClient
        self.api = ApiClient(self.url, API_KEY)

    def _boto(self) -> Any:
        import boto3
        return boto3.client("s3", endpoint_url=self.s3_url, region_name="us-east-1")

    def put_inputs(self, files: list[Path], prefix: str) -> str:
        for p in files:
            self.s3.upload_file(str(p), INPUT_BUCKET, f"{prefix}{p.name}")
        return f"s3://{INPUT_BUCKET}/{prefix}"

    def close(self) -> None:
        """SIGINT = `kimi-asr up`'s ordered shutdown (API, worker, redis)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        self.moto.stop()


def _ts(s: str | None) -> float | None:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() if s else None


def run_batch(stack: Stack, s3_prefix: str, options: dict[str, Any], timeout_s: float) -> tuple[float, list[float], dict]:
    """One bulk batch; (wall from POST to completion, per-job latencies, counts)."""
    t0 = time.perf_counter()
    b = stack.api.post_json("/v1/batches", {"s3_prefix": s3_prefix, **options})
    while True:
        view = stack.api.get(f"/v1/batches/{b['id']}", params={"limit": 1}).json()
        if view["status"] == "completed":
            break
        if time.perf_counter() - t0 > timeout_s:
            raise SystemExit(f"batch {b['id']} not done after {timeout_s:.0f} s: {view['counts']}")
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    lat, cursor = [], None
    while True:
        page = stack.api.get(f"/v1/batches/{b['id']}", params={"limit": 200, **({"cursor": cursor} if cursor else {})}).json()
        for j in page["jobs"]["data"]:
            start, end = _ts(j.get("created_at")), _ts(j.get("finished_at"))
            if start and end and j["status"] == "completed":
                lat.append(end - start)
        cursor = page["jobs"]["next_cursor"]
        if not cursor:
            break
    return wall, lat, view["counts"]


def interactive_latencies(stack: Stack, files: list[Path], options: dict[str, Any]) -> list[float]:
    """Upload, then poll every 20 ms until done; one job at a time."""
    out = []
    for p in files:
        t = time.perf_counter()
        j = stack.api.upload(p, {**options, "priority": "interactive"})
        while True:
            j = stack.api.get(f"/v1/jobs/{j['id']}").json()
            if j["status"] in DONE:
                break
            time.sleep(0.02)
        if j["status"] != "completed":
            raise SystemExit(f"job {j['id']} {j['status']}: {j.get('error')}")
        out.append(time.perf_counter() - t)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model_dir, glm_dir, shape = select_checkpoint(args)
    conc = 1 if args.system == "naive_worker" else args.concurrency
    n, k = args.n_files, args.latency_requests
    # Distinct audio for every phase, so vLLM's prefix cache never serves a repeat.
    w = min(n, WARMUP_FILES)
    audio = ensure_audio_set(args.audio, args.clip_s, 2 * n + w)
    probes = ensure_audio_set(args.audio, 10.0, 2 * k + 1) if k else None
    bulk_files, load_files, warm = list(audio.files[:n]), list(audio.files[n:2 * n]), list(audio.files[2 * n:])
    opts = {"max_tokens": args.max_tokens, "ignore_eos": not args.stop_on_eos}
    path = jsonl_path(args.jsonl)
    common = dict(model_shape=shape, max_tokens=args.max_tokens, ignore_eos=not args.stop_on_eos,
                  worker_concurrency=conc, storage="s3 (moto server, loopback)", note=args.note)
    bulk_desc = audio.subset(0, n).description
    idle_desc = probes.subset(0, k).description if probes else None
    load_desc = probes.subset(k, 2 * k).description if probes else None
    run_id = uuid.uuid4().hex[:8]
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kimi-bench-service-") as tmp:
        t_up = time.perf_counter()
        stack = Stack(model_dir, glm_dir, conc, Path(tmp))
        startup_s = time.perf_counter() - t_up
        try:
            bulk_uri = stack.put_inputs(bulk_files, f"{run_id}/bulk/")
            load_uri = stack.put_inputs(load_files, f"{run_id}/load/")
            run_batch(stack, stack.put_inputs(warm, f"{run_id}/warm/"), opts, args.timeout_s)   # warm-up at batch size
            if probes is not None:
                interactive_latencies(stack, [probes.files[2 * k]], opts)             # and the interactive path
            meter = ResourceMeter().start()
            wall, lat, counts = run_batch(stack, bulk_uri, opts, args.timeout_s)
            res = meter.stop()
            records.append(make_record("service", args.system, clip_s=args.clip_s, n_files=n, wall_s=wall,
                                       latencies_s=lat, audio_set=bulk_desc, scenario="bulk",
                                       counts=counts, stack_startup_s=startup_s, **res, **common))
            if probes is not None:
                idle = interactive_latencies(stack, list(probes.files[:k]), opts)
                records.append(make_record("service", args.system, clip_s=10.0, n_files=k, wall_s=sum(idle),
                                           latencies_s=idle, audio_set=idle_desc, scenario="idle",
                                           **common))
                bg: dict[str, Any] = {}
                th = threading.Thread(target=lambda: bg.update(r=run_batch(stack, load_uri, opts, args.timeout_s)),
                                      daemon=True)
                th.start()
                time.sleep(0.5)   # the batch is queued and running
                loaded = interactive_latencies(stack, list(probes.files[k:2 * k]), opts)
                th.join()
                records.append(make_record("service", args.system, clip_s=10.0, n_files=k, wall_s=sum(loaded),
                                           latencies_s=loaded, audio_set=load_desc, scenario="under_load",
                                           load=f"bulk batch of {n} x {args.clip_s:g}-s files",
                                           background_wall_s=bg["r"][0] if "r" in bg else None, **common))
        finally:
            stack.close()
    if args.system == "ours" and not args.no_inprocess:
        bt = open_transcriber(model_dir, glm_dir, conc)
        try:
            o = options_for(args.max_tokens, not args.stop_on_eos)
            measure_inprocess(bt, warm, conc, o)
            run = measure_inprocess(bt, bulk_files, conc, o)
        finally:
            bt.close()
        inproc = make_record("transcriber", "ours", clip_s=args.clip_s, n_files=n, wall_s=run.wall_s,
                             latencies_s=run.latencies_s, audio_set=bulk_desc, scenario="throughput",
                             concurrency=conc, compared_with="service bulk (same files, same concurrency)",
                             **run.shares(), model_shape=shape, max_tokens=args.max_tokens,
                             ignore_eos=not args.stop_on_eos, note=args.note)
        records[0]["inprocess_rtfx"] = inproc["rtfx"]
        records[0]["service_overhead"] = round(1 - records[0]["rtfx"] / inproc["rtfx"], 4)
        records.append(inproc)
    for r in records:
        emit(r, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
