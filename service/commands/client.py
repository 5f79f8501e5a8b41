"""`kimi-asr submit | status | bulk`: a small client of the HTTP API.

Server and key: ``--url``/``--api-key`` or ``KIMI_URL``/``KIMI_API_KEY``
(default URL http://127.0.0.1:8000). Uploads are streamed from disk.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path

AUDIO_EXT = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64", ".rf64"}
FORMATS = ("json", "text", "srt", "vtt", "verbose_json")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("KIMI_URL", "http://127.0.0.1:8000"))
    p.add_argument("--api-key", default=os.environ.get("KIMI_API_KEY", ""))


def _job_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--instruction")
    p.add_argument("--language")
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--temperature", type=float)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    if "submit" in subparsers.choices:      # the dispatcher may import this module once per subcommand
        return
    p = subparsers.add_parser("submit", help="upload audio files as jobs")
    _common(p)
    _job_opts(p)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--wait", action="store_true", help="wait and print the transcripts")
    p.add_argument("--webhook", help="webhook URL for each job")
    p.add_argument("--format", default="text", choices=FORMATS)
    p.add_argument("--priority", default="interactive", choices=("interactive", "bulk"))
    p.set_defaults(func=cmd_submit)

    p = subparsers.add_parser("status", help="show a job (or batch: bat_...)")
    _common(p)
    p.add_argument("id")
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser("bulk", help="transcribe a directory or an s3:// prefix as one batch")
    _common(p)
    _job_opts(p)
    p.add_argument("source", metavar="DIR|s3://bucket/prefix")
    p.add_argument("--webhook", help="batch webhook URL (fires when the batch completes)")
    p.add_argument("--out", help="write each transcript here (DIR source: <name>.<format>)")
    p.add_argument("--format", default="text", choices=FORMATS)
    p.add_argument("--no-wait", action="store_true", help="create the batch and return")
    p.set_defaults(func=cmd_bulk)


class ApiClient:
    def __init__(self, url: str, key: str):
        import requests
        self.url = url.rstrip("/")
        self.s = requests.Session()
        if key:
            self.s.headers["Authorization"] = f"Bearer {key}"

    def _check(self, r):
        if r.status_code >= 400:
            try:
                e = r.json()["error"]
                msg = f"{e['code']}: {e['message']}"
            except Exception:  # noqa: BLE001
                msg = r.text[:300]
            raise SystemExit(f"error: HTTP {r.status_code} {msg}")
        return r

    def get(self, path: str, **kw):
        return self._check(self.s.get(self.url + path, timeout=60, **kw))

    def post_json(self, path: str, body: dict):
        return self._check(self.s.post(self.url + path, json=body, timeout=300)).json()

    def upload(self, path: Path, fields: dict):
        body = MultipartFile(path, {k: str(v) for k, v in fields.items() if v is not None})
        return self._check(self.s.post(self.url + "/v1/jobs", data=body, timeout=3600,
                                       headers={"Content-Type": body.content_type,
                                                "Content-Length": str(len(body))})).json()


class MultipartFile:
    """multipart/form-data body that streams the file from disk (requests would buffer it)."""

    def __init__(self, path: Path, fields: dict[str, str]):
        self.boundary = "kimi" + secrets.token_hex(16)
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        pre = b""
        for k, v in fields.items():
            pre += (f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").encode()
        name = path.name.replace('"', "_")
        pre += (f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode()
        self.parts = [pre, None, f"\r\n--{self.boundary}--\r\n".encode()]
        self.path = path
        self.size = len(pre) + path.stat().st_size + len(self.parts[2])
        self.f = None
        self.i = 0

    def __len__(self) -> int:
        return self.size

    def read(self, n: int = -1) -> bytes:
        while self.i < 3:
            if self.i == 1:
                if self.f is None:
                    self.f = open(self.path, "rb")
                chunk = self.f.read(n if n and n > 0 else 1 << 20)
                if chunk:
                    return chunk
                self.f.close()
                self.i = 2
                continue
            part, self.parts[self.i] = self.parts[self.i], b""
            self.i += 1
            if part:
                return part
        return b""


def _client(args) -> ApiClient:
    return ApiClient(args.url, args.api_key)


def _opts(args) -> dict:
    return {"instruction": args.instruction, "language": args.language, "max_tokens": args.max_tokens,
            "temperature": args.temperature}


def _wait_job(c: ApiClient, jid: str) -> dict:
    while True:
        j = c.get(f"/v1/jobs/{jid}").json()
        if j["status"] in ("completed", "failed", "canceled"):
            return j
        time.sleep(0.5)


def cmd_submit(args) -> int:
    c = _client(args)
    jobs = []
    for f in args.files:
        p = Path(f)
        if not p.is_file():
            raise SystemExit(f"error: no such file: {f}")
        j = c.upload(p, {**_opts(args), "webhook_url": args.webhook, "priority": args.priority})
        jobs.append((p, j))
        if not args.wait:
            print(json.dumps({"file": str(p), "id": j["id"], "status": j["status"], "status_url": j["status_url"]}))
    if not args.wait:
        return 0
    rc = 0
    for p, j in jobs:
        j = _wait_job(c, j["id"])
        if j["status"] != "completed":
            err = j.get("error") or {}
            print(f"{p}: {j['status']} {err.get('code', '')}: {err.get('message', '')}", file=sys.stderr)
            rc = 1
            continue
        text = c.get(f"/v1/jobs/{j['id']}/transcript", params={"format": args.format}).text
        if len(jobs) > 1:
            print(f"==> {p} ({j['id']}) <==")
        print(text)
    return rc


def cmd_status(args) -> int:
    c = _client(args)
    path = f"/v1/batches/{args.id}" if args.id.startswith("bat_") else f"/v1/jobs/{args.id}"
    print(json.dumps(c.get(path).json(), indent=2))
    return 0


def _bar(done: int, total: int, counts: dict, t0: float, width: int = 30) -> str:
    frac = done / total if total else 1.0
    fill = int(width * frac)
    return (f"\r[{'#' * fill}{'.' * (width - fill)}] {done}/{total} "
            f"ok {counts.get('completed', 0)} failed {counts.get('failed', 0)} "
            f"running {counts.get('processing', 0)} queued {counts.get('queued', 0)}  {time.time() - t0:5.0f}s")


def cmd_bulk(args) -> int:
    c = _client(args)
    t0 = time.time()
    base = {**_opts(args), "webhook_url": args.webhook}
    base = {k: v for k, v in base.items() if v is not None}
    names: dict[str, str] = {}
    if args.source.startswith("s3://"):
        b = c.post_json("/v1/batches", {"s3_prefix": args.source, **base})
    else:
        d = Path(args.source)
        files = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXT) if d.is_dir() else []
        if not files:
            raise SystemExit(f"error: no audio files ({', '.join(sorted(AUDIO_EXT))}) under {args.source}")
        b = c.post_json("/v1/batches", {"upload_count": len(files), **base})
        for i, p in enumerate(files, 1):
            j = c.upload(p, {"batch_id": b["id"]})
            names[j["id"]] = str(p.relative_to(d))
            print(f"\ruploading {i}/{len(files)} {p.name[:40]:40s}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    print(f"batch {b['id']}: {b['total']} files", file=sys.stderr)
    if args.no_wait:
        print(json.dumps({"id": b["id"], "total": b["total"]}))
        return 0
    while True:
        b = c.get(f"/v1/batches/{b['id']}", params={"limit": 1}).json()
        counts = b["counts"]
        done = counts["completed"] + counts["failed"] + counts["canceled"]
        print(_bar(done, b["total"], counts, t0), end="", file=sys.stderr, flush=True)
        if b["status"] == "completed":
            break
        time.sleep(1)
    print(file=sys.stderr)
    failed = []
    cursor = None
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    while True:
        page = c.get(f"/v1/batches/{b['id']}", params={"limit": 200, **({"cursor": cursor} if cursor else {})}).json()
        for j in page["jobs"]["data"]:
            if j["status"] != "completed":
                failed.append(j)
            elif out:
                name = names.get(j["id"]) or j["id"]
                ext = {"verbose_json": "json"}.get(args.format, args.format)
                target = out / f"{name}.{ext}"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(c.get(f"/v1/jobs/{j['id']}/transcript", params={"format": args.format}).text)
        cursor = page["jobs"]["next_cursor"]
        if not cursor:
            break
    counts = b["counts"]
    print(f"summary: batch {b['id']}  total {b['total']}  completed {counts['completed']}  "
          f"failed {counts['failed']}  canceled {counts['canceled']}  in {time.time() - t0:.1f}s"
          + (f"  transcripts in {out}" if out else ""))
    for j in failed:
        e = j.get("error") or {}
        print(f"  {names.get(j['id'], j['id'])}: {j['status']} {e.get('code', '')}: {e.get('message', '')}")
    return 1 if failed else 0
