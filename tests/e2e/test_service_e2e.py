"""End-to-end acceptance of the job service with real parts only (see conftest.py).

Run: python -m pytest -m e2e tests/e2e -v
"""
from __future__ import annotations

import csv
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from helpers import wait_for

from .conftest import INPUT_BUCKET, KEY_A, REPO, wav

pytestmark = pytest.mark.e2e

FORMATS = ("json", "text", "srt", "vtt", "verbose_json")


def _err(r, status, code):
    assert r.status_code == status, (r.status_code, r.text)
    e = r.json()["error"]
    assert e["code"] == code and e["message"], e
    return e


@pytest.fixture(scope="module")
def reference(tiny_ckpt):
    """What the Transcriber itself gives (in this process, the same checkpoint), for two clips."""
    from kimi_model.transcriber import BlockingTranscriber, TranscriberConfig, TranscriptionOptions
    clips = {"a": wav(1.0, 300.0, seed=1), "b": wav(2.2, 520.0, seed=2)}
    cfg = TranscriberConfig.from_env(model_dir=str(tiny_ckpt.model_dir),
                                     speech_tokenizer_dir=str(tiny_ckpt.speech_tokenizer_dir))
    t = BlockingTranscriber(cfg)
    try:
        out = {k: (data, t.transcribe(data, TranscriptionOptions(max_tokens=8, ignore_eos=True)))
               for k, data in clips.items()}
    finally:
        t.close()
    return out


def test_upload_poll_transcript_every_format_matches_transcriber(reference, worker, alice):
    for name, (data, ref) in reference.items():
        r = alice.upload(data, f"{name}.wav", max_tokens=8, ignore_eos="true", metadata=json.dumps({"clip": name}))
        assert r.status_code == 202, r.text
        j = r.json()
        assert j["status"] in ("queued", "processing") and j["status_url"].endswith(j["id"])
        done = alice.wait(j["id"])
        assert done["status"] == "completed", done
        assert done["progress"] == 1.0 and done["created_at"] <= done["started_at"] <= done["finished_at"]
        assert abs(done["audio_duration_s"] - ref.duration_s) < 1e-6 and done["metadata"] == {"clip": name}
        t = {f: alice.get(f"/v1/jobs/{j['id']}/transcript", params={"format": f}) for f in FORMATS}
        assert all(x.status_code == 200 for x in t.values())
        assert t["json"].json() == {"text": ref.text}
        assert t["text"].text == ref.text
        vj = t["verbose_json"].json()
        assert vj["text"] == ref.text and vj["duration"] == pytest.approx(ref.duration_s)
        assert [s["tokens"] for s in vj["segments"]] == [list(s.token_ids) for s in ref.segments]
        assert [(s["start"], s["end"]) for s in vj["segments"]] == [(s.start_s, s.end_s) for s in ref.segments]
        assert sum(len(s["tokens"]) for s in vj["segments"]) == 8
        assert t["srt"].text.startswith("1\n00:00:00,000 --> ") and ref.text.strip() in t["srt"].text
        assert t["vtt"].text.startswith("WEBVTT\n\n00:00:00.000 --> ")
        assert t["vtt"].headers["Content-Type"].startswith("text/vtt")
    # Idempotency-Key: same request, same job
    data = reference["a"][0]
    h = {"Idempotency-Key": "e2e-idem-1"}
    r1 = alice.s.post(f"{alice.base}/v1/jobs", files={"file": ("a.wav", data)}, data={"max_tokens": "8"}, headers=h)
    r2 = alice.s.post(f"{alice.base}/v1/jobs", files={"file": ("a.wav", data)}, data={"max_tokens": "8"}, headers=h)
    assert r1.status_code == r2.status_code == 202 and r1.json()["id"] == r2.json()["id"]
    alice.wait(r1.json()["id"])


def test_openai_client_unchanged(worker, api_url):
    import openai
    client = openai.OpenAI(base_url=f"{api_url}/v1", api_key=KEY_A, max_retries=0)
    audio = wav(1.5, 440.0, seed=3)
    r = client.audio.transcriptions.create(model="kimi-audio", file=("a.wav", audio),
                                          extra_body={"max_tokens": 8, "ignore_eos": "true"})
    assert isinstance(r.text, str) and r.text
    v = client.audio.transcriptions.create(model="kimi-audio", file=("a.wav", audio), response_format="verbose_json",
                                          extra_body={"max_tokens": 8, "ignore_eos": "true"})
    assert v.text == r.text and v.duration == pytest.approx(1.5) and v.segments and v.segments[0].end > 0
    txt = client.audio.transcriptions.create(model="kimi-audio", file=("a.wav", audio), response_format="text",
                                            extra_body={"max_tokens": 8, "ignore_eos": "true"})
    assert txt.strip() == r.text.strip()
    srt = client.audio.transcriptions.create(model="kimi-audio", file=("a.wav", audio), response_format="srt",
                                            extra_body={"max_tokens": 8, "ignore_eos": "true"})
    assert "-->" in srt
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{api_url}/v1", api_key="wrong", max_retries=0).audio.transcriptions.create(
            model="kimi-audio", file=("a.wav", audio))
    with pytest.raises(openai.UnprocessableEntityError):
        client.audio.transcriptions.create(model="kimi-audio", file=("a.wav", b"definitely not audio" * 20))


def _serve_dir(path):
    class Q(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(path), **k)

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Q)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def test_bad_inputs_get_clear_4xx_and_lose_nothing(worker, alice, bob, api_url, tmp_path, s3):
    import requests
    good = alice.upload(wav(1.0, seed=4), max_tokens=8).json()["id"]
    bad = [
        (alice.upload(b"this is plain text, not audio\n" * 50, "notes.wav"), 422, "audio_undecodable"),
        (alice.upload(b"", "empty.wav"), 422, "audio_empty"),
        (alice.upload(b"\x00\x00\x00\x20ftypM4A " + bytes(2000), "a.m4a"), 415, "audio_unsupported_format"),
        (alice.upload(wav(25.0), "long.wav"), 422, "audio_too_long"),
        (alice.upload(bytes(1_200_000), "big.wav"), 413, "payload_too_large"),
        (alice.upload(bytes(3_000_000), "huge.wav"), 413, "payload_too_large"),
        (alice.upload(wav(1.0), max_tokens="lots"), 400, "invalid_request"),
        (alice.upload(wav(1.0), webhook_url="http://10.0.0.1/hook"), 400, "url_not_allowed"),
        (alice.upload(wav(1.0), webhook_url="http://169.254.169.254/latest/meta-data"), 400, "url_not_allowed"),
        (alice.post("/v1/jobs", json={"audio_url": "http://192.168.0.10/a.wav"}), 400, "url_not_allowed"),
        (alice.post("/v1/jobs", json={"audio_url": "http://127.0.0.1:1/a.wav"}), 202, None),  # loopback is allowed here
        (alice.post("/v1/jobs", data=b'{"audio_url": ', headers={"Content-Type": "application/json"}), 400,
         "invalid_json"),
        (alice.post("/v1/jobs", json={"audio_url": "ftp://example.com/a.wav"}), 400, "url_not_allowed"),
        (alice.get("/v1/jobs/job_doesnotexist"), 404, "not_found"),
        (bob.get(f"/v1/jobs/{good}"), 404, "not_found"),
        (bob.get(f"/v1/jobs/{good}/transcript"), 404, "not_found"),
        (requests.get(f"{api_url}/v1/jobs/{good}"), 401, "unauthorized"),
        (requests.get(f"{api_url}/v1/jobs/{good}", headers={"Authorization": "Bearer nope"}), 401, "unauthorized"),
    ]
    loop_job = None
    for r, status, code in bad:
        if code is None:
            assert r.status_code == status, r.text
            loop_job = r.json()["id"]
            continue
        _err(r, status, code)
    # job-level failures are clear too, and permanent ones fail at once
    srv, base = _serve_dir(tmp_path)
    try:
        missing = alice.post("/v1/jobs", json={"audio_url": f"{base}/missing.wav"}).json()["id"]
        nos3 = alice.post("/v1/jobs", json={"s3_uri": f"s3://{INPUT_BUCKET}/no/such.wav"}).json()["id"]
        (tmp_path / "junk.wav").write_bytes(b"junk" * 100)
        junk = alice.post("/v1/jobs", json={"audio_url": f"{base}/junk.wav"}).json()["id"]
        for jid, code in ((missing, "fetch_failed"), (nos3, "s3_object_not_found"), (junk, "audio_undecodable")):
            j = alice.wait(jid)
            assert j["status"] == "failed" and j["error"]["code"] == code and j["attempts"] == 1, j
            _err(alice.get(f"/v1/jobs/{jid}/transcript"), 422, "job_failed")
    finally:
        srv.shutdown()
    assert alice.wait(good)["status"] == "completed"
    assert alice.wait(loop_job)["status"] == "failed"      # nothing listens on 127.0.0.1:1: transient retries, then failed
    ids = {j["id"] for j in alice.get("/v1/jobs", params={"limit": 200}).json()["data"]}
    assert good in ids
    assert not ({good} & {j["id"] for j in bob.get("/v1/jobs").json()["data"]})


def test_webhook_signed_retried_delivered_once(worker, alice, receiver_factory):
    from service.webhooks import verify
    rec = receiver_factory(fail_first=2)
    jid = alice.upload(wav(1.0, seed=5), max_tokens=8, webhook_url=rec.url).json()["id"]
    assert alice.wait(jid)["status"] == "completed"
    j = wait_for(lambda: (lambda x: x if x["webhook"]["status"] == "delivered" else None)(
        alice.get(f"/v1/jobs/{jid}").json()), 30, what="webhook delivered")
    time.sleep(2.5)                                      # longer than the rest of the schedule: nothing more comes
    assert [c for _, _, c in rec.requests] == [500, 500, 200]
    secret = alice.get("/v1/webhook-secret").json()["secret"]
    ids = set()
    for headers, body, _ in rec.requests:
        ev = verify(secret, headers, body)
        ids.add(headers["webhook-id"])
        assert ev["type"] == "job.completed" and ev["data"]["id"] == jid and ev["data"]["status"] == "completed"
    assert ids == {f"msg_{jid}_completed"}
    transcript = alice.get(f"/v1/jobs/{jid}/transcript", params={"format": "text"}).text
    assert json.loads(rec.requests[-1][1])["data"]["text"] == transcript
    att = j["webhook"]["attempts"]
    assert [(a["attempt"], a["success"], a["status_code"]) for a in att] == [(1, False, 500), (2, False, 500),
                                                                             (3, True, 200)]


def test_cli_submit_status_bulk(worker, api_url, tmp_path, s3):
    env = {**os.environ, "KIMI_URL": api_url, "KIMI_API_KEY": KEY_A,
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cli = [sys.executable, "-m", "kimi_model.cli"]
    (tmp_path / "one.wav").write_bytes(wav(1.0, seed=6))
    r = subprocess.run([*cli, "submit", str(tmp_path / "one.wav"), "--wait", "--format", "srt", "--max-tokens", "8"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "-->" in r.stdout, r.stderr
    r = subprocess.run([*cli, "submit", str(tmp_path / "one.wav"), "--max-tokens", "8"], env=env,
                       capture_output=True, text=True, timeout=60)
    jid = json.loads(r.stdout)["id"]
    r = subprocess.run([*cli, "status", jid], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout)["id"] == jid
    d = tmp_path / "dir"
    d.mkdir()
    for i in range(3):
        (d / f"c{i}.wav").write_bytes(wav(0.8, 200 + 50 * i, seed=i))
    r = subprocess.run([*cli, "bulk", str(d), "--max-tokens", "8", "--out", str(tmp_path / "out")], env=env,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and "completed 3" in r.stdout, (r.stdout, r.stderr)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["c0.wav.text", "c1.wav.text", "c2.wav.text"]
    assert "ok 3" in r.stderr                             # the live progress bar
    for i in range(2):
        s3.put_object(Bucket=INPUT_BUCKET, Key=f"cli/x{i}.wav", Body=wav(0.8, seed=10 + i))
    r = subprocess.run([*cli, "bulk", f"s3://{INPUT_BUCKET}/cli/", "--max-tokens", "8"], env=env,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and "completed 2" in r.stdout, (r.stdout, r.stderr)


def test_list_delete_health_metrics(worker, alice, api_url, s3, settings):
    import requests
    jids = [alice.upload(wav(0.6, seed=20 + i), max_tokens=4).json()["id"] for i in range(3)]
    for j in jids:
        alice.wait(j)
    seen, cursor = [], None
    while True:
        page = alice.get("/v1/jobs", params={"limit": 2, "status": "completed", **({"cursor": cursor} if cursor else {})}).json()
        seen += [j["id"] for j in page["data"]]
        assert all(j["status"] == "completed" for j in page["data"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen[:3] == jids[::-1] and len(seen) == len(set(seen))
    key = f"{settings.s3_prefix}transcripts/{jids[0]}.json"
    s3.head_object(Bucket=settings.s3_bucket, Key=key)
    r = alice.s.delete(f"{api_url}/v1/jobs/{jids[0]}")
    assert r.status_code == 200 and r.json()["deleted"] is True
    with pytest.raises(Exception):
        s3.head_object(Bucket=settings.s3_bucket, Key=key)
    _err(alice.get(f"/v1/jobs/{jids[0]}/transcript"), 410, "gone")
    assert alice.get(f"/v1/jobs/{jids[0]}").json()["deleted"] is True
    assert requests.get(f"{api_url}/healthz").json() == {"status": "ok"}
    ready = requests.get(f"{api_url}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["workers"]["live"] >= 1
    m = requests.get(f"{api_url}/metrics").text
    for needle in ('kimi_queue_depth{queue="interactive"}', 'kimi_queue_depth{queue="bulk"}',
                   'kimi_jobs{status="completed"}', "kimi_audio_seconds_processed_total",
                   "kimi_real_time_factor", "kimi_job_latency_seconds_bucket", "kimi_job_processing_seconds_count",
                   "kimi_http_request_duration_seconds_bucket"):
        assert needle in m, needle
    spec = requests.get(f"{api_url}/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/v1/batches" in spec["paths"]


BULK_N = 50


def test_bulk_batch_of_50_and_interactive_job_behind_it(worker, alice, s3, receiver_factory, store):
    rec = receiver_factory()
    for i in range(BULK_N):
        s3.put_object(Bucket=INPUT_BUCKET, Key=f"bulk50/f{i:02d}.wav", Body=wav(2.0, 200 + 7 * i, seed=100 + i))
    r = alice.post("/v1/batches", json={"s3_prefix": f"s3://{INPUT_BUCKET}/bulk50/", "max_tokens": 64,
                                        "ignore_eos": True, "webhook_url": rec.url, "metadata": {"run": "bulk50"}})
    assert r.status_code == 202, r.text
    b = r.json()
    assert b["total"] == BULK_N and b["priority"] == "bulk"
    time.sleep(0.5)                                        # the worker is busy with the batch now
    inter = alice.upload(wav(1.0, seed=7), max_tokens=8).json()["id"]
    ij = alice.wait(inter, 120)
    assert ij["status"] == "completed"
    at_inter = alice.get(f"/v1/batches/{b['id']}").json()["counts"]
    final = wait_for(lambda: (lambda x: x if x["status"] == "completed" else None)(
        alice.get(f"/v1/batches/{b['id']}").json()), 600, 1.0, what="batch")
    assert final["counts"] == {"queued": 0, "processing": 0, "completed": BULK_N, "failed": 0, "canceled": 0}
    assert ij["finished_at"] < final["finished_at"]
    print(f"batch counts when the interactive job finished: {at_inter}")
    assert at_inter["completed"] < BULK_N - 10, at_inter   # it did not wait for the backlog
    # paginated jobs of the batch: all 50, once each
    ids, cursor = [], None
    while True:
        page = alice.get(f"/v1/batches/{b['id']}", params={"limit": 20, **({"cursor": cursor} if cursor else {})}).json()
        ids += [j["id"] for j in page["jobs"]["data"]]
        cursor = page["jobs"]["next_cursor"]
        if not cursor:
            break
    assert len(ids) == len(set(ids)) == BULK_N
    wait_for(lambda: rec.requests, 30, what="batch webhook")
    time.sleep(1)
    assert len(rec.requests) == 1
    ev = json.loads(rec.requests[0][1])
    assert ev["type"] == "batch.completed" and ev["data"]["counts"]["completed"] == BULK_N


def test_manifest_batches(worker, alice, s3, tmp_path):
    for i in range(2):
        s3.put_object(Bucket=INPUT_BUCKET, Key=f"man/m{i}.wav", Body=wav(0.8, seed=200 + i))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["s3_uri", "speaker"])
    w.writerows([[f"s3://{INPUT_BUCKET}/man/m{i}.wav", f"spk{i}"] for i in range(2)])
    s3.put_object(Bucket=INPUT_BUCKET, Key="man/list.csv", Body=buf.getvalue().encode())
    (tmp_path / "u.wav").write_bytes(wav(0.8, seed=210))
    srv, base = _serve_dir(tmp_path)
    try:
        jsonl = "\n".join([json.dumps({"audio_url": f"{base}/u.wav", "metadata": {"k": 1}}),
                           json.dumps({"s3_uri": f"s3://{INPUT_BUCKET}/man/m0.wav"})])
        s3.put_object(Bucket=INPUT_BUCKET, Key="man/list.jsonl", Body=jsonl.encode())
        for key in ("list.csv", "list.jsonl"):
            b = alice.post("/v1/batches", json={"manifest": f"s3://{INPUT_BUCKET}/man/{key}", "max_tokens": 8}).json()
            assert b["total"] == 2, b
            done = wait_for(lambda: (lambda x: x if x["status"] == "completed" else None)(
                alice.get(f"/v1/batches/{b['id']}").json()), 120, 0.5, what="manifest batch")
            assert done["counts"]["completed"] == 2
            if key == "list.csv":
                assert sorted(j["metadata"]["speaker"] for j in done["jobs"]["data"]) == ["spk0", "spk1"]
    finally:
        srv.shutdown()
    _err(alice.post("/v1/batches", json={"manifest": f"s3://{INPUT_BUCKET}/man/none.csv"}), 422,
         "s3_object_not_found")


def test_worker_sigkilled_mid_job_restarted_job_completes_once(worker, alice, store, receiver_factory):
    workers = worker
    assert not workers.alive("w2")
    rec = receiver_factory()
    before = store.stats().get("completed_total", 0)
    jid = alice.upload(wav(3.0, seed=300), max_tokens=1200, ignore_eos="true", webhook_url=rec.url).json()["id"]
    wait_for(lambda: store.get_job(jid).get("status") == "processing", 60, 0.05, what="job to start")
    time.sleep(1.0)
    assert store.get_job(jid)["status"] == "processing"
    assert store.get_job(jid)["worker"].endswith(f":{workers.pid_of('w1')}")
    workers.kill("w1")
    time.sleep(1.0)
    assert store.get_job(jid)["status"] == "processing"      # nobody finished it
    workers.start("w1")
    j = alice.wait(jid, 180)
    assert j["status"] == "completed" and j["attempts"] == 2, j
    wait_for(lambda: rec.requests, 30, what="webhook")
    # the dead worker's unacked message comes back after the visibility timeout: a no-op
    def ours_unacked():
        return [v for v in store.r.hvals("unacked") if jid in v]
    try:
        wait_for(lambda: not ours_unacked(), 150, 1.0, what="redelivery of the killed worker's message")
    except AssertionError as e:
        raise AssertionError(f"{e}; still unacked: {ours_unacked()}; job: {store.get_job(jid)}") from None
    time.sleep(2)
    j = alice.get(f"/v1/jobs/{jid}").json()
    assert j["status"] == "completed" and j["attempts"] == 2
    assert len(rec.requests) == 1 and [a["success"] for a in j["webhook"]["attempts"]] == [True]
    assert store.stats()["completed_total"] - before == 1
    assert len(alice.get(f"/v1/jobs/{jid}/transcript", params={"format": "verbose_json"}).json()["segments"]) >= 1


def test_two_workers_share_the_queues(worker, alice, store, s3):
    workers = worker
    workers.ensure("w2")
    before = store.stats().get("completed_total", 0)
    for i in range(16):
        s3.put_object(Bucket=INPUT_BUCKET, Key=f"two/f{i:02d}.wav", Body=wav(2.0, 200 + 7 * i, seed=400 + i))
    items = [{"s3_uri": f"s3://{INPUT_BUCKET}/two/f{i:02d}.wav"} for i in range(16)]
    b = alice.post("/v1/batches", json={"items": items, "max_tokens": 48, "ignore_eos": True}).json()
    done = wait_for(lambda: (lambda x: x if x["status"] == "completed" else None)(
        alice.get(f"/v1/batches/{b['id']}", params={"limit": 100}).json()), 300, 0.5, what="batch on two workers")
    assert done["counts"]["completed"] == 16
    jobs = [store.get_job(j["id"]) for j in done["jobs"]["data"]]
    pids = {j["worker"].rsplit(":", 1)[1] for j in jobs}
    assert pids == {str(workers.pid_of("w1")), str(workers.pid_of("w2"))}, pids
    assert all(j["attempts"] == "1" for j in jobs)
    assert store.stats()["completed_total"] - before == 16


def test_worker_refuses_to_start_when_visibility_timeout_too_short(env):
    bad = {**env, "KIMI_TASK_TIME_LIMIT_S": "120", "KIMI_VISIBILITY_TIMEOUT_S": "60"}
    r = subprocess.run([sys.executable, "-m", "worker"], env=bad, cwd=str(REPO), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0 and "KIMI_VISIBILITY_TIMEOUT_S" in r.stderr


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, session id) of a process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[1]), int(rest[3])
    except (OSError, IndexError, ValueError):
        return None


def _stack_procs(up_pid: int) -> list[int]:
    """Every process in the sessions of `up`'s children (redis, worker + vLLM engine, gunicorn)."""
    pids = [int(d) for d in os.listdir("/proc") if d.isdigit()]
    stats = {p: _stat(p) for p in pids}
    sessions = {p for p, st in stats.items() if st and st[0] == up_pid}
    return [p for p, st in stats.items() if st and st[1] in sessions]


def test_kimi_asr_up_runs_the_stack_and_stops_cleanly(tiny_ckpt, tmp_path):
    """`kimi-asr up` with no REDIS_URL and no keys: own redis, worker, API; SIGINT stops everything."""
    import signal

    import requests

    from .conftest import free_port
    data = tmp_path / "updata"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIMI_") and k != "REDIS_URL"}
    env.update({"KIMI_WORKER_CONCURRENCY": "2", "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
                "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")})
    log = open(tmp_path / "up.log", "wb")
    p = subprocess.Popen([sys.executable, "-m", "kimi_model.cli", "up", "--port", str(port), "--data-dir", str(data),
                          "--model", str(tiny_ckpt.model_dir), "--speech-tokenizer", str(tiny_ckpt.speech_tokenizer_dir)],
                         env=env, cwd=str(REPO), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "kimi-asr is up" in (tmp_path / "up.log").read_text(errors="replace") or p.poll() is not None,
                 300, 0.5, what="kimi-asr up")
        assert p.poll() is None, (tmp_path / "up.log").read_text(errors="replace")[-3000:]
        key = (data / "api_key").read_text().strip()
        assert key in (tmp_path / "up.log").read_text(errors="replace")       # the generated key is printed
        url = f"http://127.0.0.1:{port}"
        r = requests.post(f"{url}/v1/jobs", headers={"Authorization": f"Bearer {key}"},
                          files={"file": ("a.wav", wav(1.0))}, data={"max_tokens": "8"}, timeout=30)
        assert r.status_code == 202, r.text
        jid = r.json()["id"]
        j = wait_for(lambda: (lambda x: x if x["status"] == "completed" else None)(
            requests.get(f"{url}/v1/jobs/{jid}", headers={"Authorization": f"Bearer {key}"}, timeout=10).json()),
            60, 0.2, what="job on the up stack")
        assert (data / "storage" / "transcripts" / f"{jid}.json").is_file() and j["progress"] == 1.0
        assert (data / "redis" / "appendonlydir").is_dir()                   # its own redis, AOF on
        stack = _stack_procs(p.pid)
        assert len(stack) >= 5, stack                    # redis, worker, engine core, gunicorn master + worker
        p.send_signal(signal.SIGINT)
        assert p.wait(120) == 0
        wait_for(lambda: not [q for q in stack if _stat(q)], 30, 0.5, what="all children to exit")
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/healthz", timeout=2)
    finally:
        if p.poll() is None:
            p.kill()
        log.close()
