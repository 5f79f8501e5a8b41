import io
import json
import threading

from helpers import Receiver, wait_for

from .conftest import AUTH_A, AUTH_B, Harness, wav_bytes


def upload(h, data=None, auth=AUTH_A, headers=None, **form):
    form = {k: (json.dumps(v) if isinstance(v, dict) else str(v)) for k, v in form.items()}
    form["file"] = (io.BytesIO(wav_bytes() if data is None else data), "a.wav")
    return h.client.post("/v1/jobs", data=form, headers={**auth, **(headers or {})},
                         content_type="multipart/form-data")


def err(resp, status, code):
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["error"]["code"] == code and body["error"]["message"], body
    return body


def test_upload_poll_transcript_all_formats(h):
    r = upload(h, max_tokens=8, metadata={"k": "v"})
    assert r.status_code == 202
    j = r.get_json()
    assert j["status"] == "queued" and j["status_url"].endswith(f"/v1/jobs/{j['id']}")
    assert j["audio_duration_s"] == 0.5 and j["options"] == {"max_tokens": 8}
    err(h.client.get(f"/v1/jobs/{j['id']}/transcript", headers=AUTH_A), 409, "conflict")
    assert h.sent == [("kimi.transcribe", [j["id"]], "interactive", 0)]
    h.drain()
    j2 = h.client.get(f"/v1/jobs/{j['id']}", headers=AUTH_A).get_json()
    assert j2["status"] == "completed" and j2["progress"] == 1.0 and j2["metadata"] == {"k": "v"}
    assert j2["started_at"] and j2["finished_at"] and j2["error"] is None
    get = lambda f: h.client.get(f"/v1/jobs/{j['id']}/transcript?format={f}", headers=AUTH_A)  # noqa: E731
    assert get("json").get_json() == {"text": "stub 0.50s"}
    assert get("text").get_data(as_text=True) == "stub 0.50s"
    srt = get("srt").get_data(as_text=True)
    assert srt.startswith("1\n00:00:00,000 --> 00:00:00,250\nstub\n")
    vtt = get("vtt").get_data(as_text=True)
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:00.250\nstub")
    vj = get("verbose_json").get_json()
    assert vj["text"] == "stub 0.50s" and vj["duration"] == 0.5
    assert [(s["start"], s["end"]) for s in vj["segments"]] == [(0.0, 0.25), (0.25, 0.5)]
    err(get("docx"), 400, "invalid_request")
    opts = h.transcriber.calls[0][1]
    assert opts.max_tokens == 8


def test_json_sources_and_bulk_queue(h, tmp_path):
    import http.server
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "a.wav").write_bytes(wav_bytes(1.0))

    class Q(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(tmp_path / "w"), **k)

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Q)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/a.wav"
    r = h.client.post("/v1/jobs", json={"audio_url": url, "priority": "bulk"}, headers=AUTH_A)
    assert r.status_code == 202
    assert h.sent[-1][2] == "bulk"
    h.drain()
    assert h.client.get(f"/v1/jobs/{r.get_json()['id']}/transcript?format=text",
                        headers=AUTH_A).get_data(as_text=True) == "stub 1.00s"
    # a URL that 404s fails with a clear code, at once (4xx is permanent)
    r = h.client.post("/v1/jobs", json={"audio_url": url + ".missing"}, headers=AUTH_A)
    h.drain()
    j = h.client.get(f"/v1/jobs/{r.get_json()['id']}", headers=AUTH_A).get_json()
    assert j["status"] == "failed" and j["error"]["code"] == "fetch_failed"
    srv.shutdown()


def test_bad_inputs_are_clear_4xx_and_lose_nothing(tmp_path):
    h = Harness(tmp_path, max_upload_bytes=200_000, max_audio_seconds=2.0)
    good = upload(h).get_json()["id"]
    err(h.client.get("/v1/jobs"), 401, "unauthorized")
    err(h.client.get("/v1/jobs", headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
    err(upload(h, b"this is not audio at all" * 10), 422, "audio_undecodable")
    err(upload(h, b""), 422, "audio_empty")
    err(upload(h, b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 100), 415, "audio_unsupported_format")
    err(upload(h, wav_bytes(3.0)), 422, "audio_too_long")
    err(upload(h, b"\x00" * 300_000), 413, "payload_too_large")
    err(upload(h, max_tokens="many"), 400, "invalid_request")
    err(upload(h, temperature="9"), 400, "invalid_request")
    err(upload(h, priority="urgent"), 400, "invalid_request")
    err(upload(h, webhook_url="http://169.254.169.254/latest"), 400, "url_not_allowed")
    err(upload(h, webhook_url="http://10.0.0.1/hook"), 400, "url_not_allowed")
    err(h.client.post("/v1/jobs", data="{not json", content_type="application/json", headers=AUTH_A),
        400, "invalid_json")
    err(h.client.post("/v1/jobs", data="x", content_type="text/plain", headers=AUTH_A), 415,
        "unsupported_media_type")
    err(h.client.post("/v1/jobs", json={"audio_url": "http://192.168.1.1/a.wav"}, headers=AUTH_A),
        400, "url_not_allowed")
    err(h.client.post("/v1/jobs", json={"audio_url": "file:///etc/passwd"}, headers=AUTH_A), 400, "url_not_allowed")
    err(h.client.post("/v1/jobs", json={"s3_uri": "http://x"}, headers=AUTH_A), 400, "invalid_s3_uri")
    err(h.client.post("/v1/jobs", json={}, headers=AUTH_A), 400, "invalid_request")
    err(h.client.post("/v1/jobs", json=[1, 2], headers=AUTH_A), 400, "invalid_request")
    err(h.client.get("/v1/jobs/job_nope", headers=AUTH_A), 404, "not_found")
    err(h.client.get(f"/v1/jobs/{good}", headers=AUTH_B), 404, "not_found")
    err(h.client.get(f"/v1/jobs/{good}/transcript", headers=AUTH_B), 404, "not_found")
    err(h.client.delete(f"/v1/jobs/{good}", headers=AUTH_B), 404, "not_found")
    err(h.client.get("/v1/nothing", headers=AUTH_A), 404, "not_found")
    err(h.client.put("/v1/jobs", headers=AUTH_A), 405, "method_not_allowed")
    # only the good job was created and it still completes
    assert [s[1][0] for s in h.sent] == [good]
    h.drain()
    assert h.client.get(f"/v1/jobs/{good}", headers=AUTH_A).get_json()["status"] == "completed"
    assert h.client.get("/v1/jobs", headers=AUTH_B).get_json()["data"] == []


def test_idempotency_key(h):
    r1 = upload(h, headers={"Idempotency-Key": "abc"})
    r2 = upload(h, headers={"Idempotency-Key": "abc"})
    assert r1.status_code == r2.status_code == 202
    assert r1.get_json()["id"] == r2.get_json()["id"] and r2.headers["Idempotent-Replayed"] == "true"
    assert len(h.sent) == 1
    err(upload(h, wav_bytes(0.7), headers={"Idempotency-Key": "abc"}), 409, "idempotency_key_reused")
    # another tenant's identical key is independent
    assert upload(h, auth=AUTH_B, headers={"Idempotency-Key": "abc"}).get_json()["id"] != r1.get_json()["id"]
    j1 = h.client.post("/v1/jobs", json={"s3_uri": "s3://b/k.wav"}, headers={**AUTH_A, "Idempotency-Key": "x"})
    j2 = h.client.post("/v1/jobs", json={"s3_uri": "s3://b/k.wav"}, headers={**AUTH_A, "Idempotency-Key": "x"})
    assert j1.get_json()["id"] == j2.get_json()["id"]


def test_delete_cancels_and_keeps_tombstone(h):
    jid = upload(h).get_json()["id"]
    r = h.client.delete(f"/v1/jobs/{jid}", headers=AUTH_A)
    assert r.status_code == 200 and r.get_json()["status"] == "canceled" and r.get_json()["deleted"]
    assert not h.storage.exists(f"audio/{jid}")
    h.drain()                                               # the queued message is a no-op now
    assert h.transcriber.calls == []
    j = h.client.get(f"/v1/jobs/{jid}", headers=AUTH_A).get_json()
    assert j["status"] == "canceled" and j["deleted"] is True
    err(h.client.get(f"/v1/jobs/{jid}/transcript", headers=AUTH_A), 410, "gone")
    done = upload(h).get_json()["id"]
    h.drain()
    assert h.storage.exists(f"transcripts/{done}.json")
    assert h.client.delete(f"/v1/jobs/{done}", headers=AUTH_A).get_json()["status"] == "completed"
    assert not h.storage.exists(f"transcripts/{done}.json")


def test_list_filter_and_cursor(h):
    ids = [upload(h).get_json()["id"] for _ in range(5)]
    h.drain()
    upload(h)
    page = h.client.get("/v1/jobs?limit=2&status=completed", headers=AUTH_A).get_json()
    got = [j["id"] for j in page["data"]]
    while page["has_more"]:
        page = h.client.get(f"/v1/jobs?limit=2&status=completed&cursor={page['next_cursor']}",
                            headers=AUTH_A).get_json()
        got += [j["id"] for j in page["data"]]
    assert got == ids[::-1]
    err(h.client.get("/v1/jobs?status=bogus", headers=AUTH_A), 400, "invalid_request")
    err(h.client.get("/v1/jobs?limit=0", headers=AUTH_A), 400, "invalid_request")


def test_webhook_fails_twice_then_one_success(tmp_path):
    h = Harness(tmp_path)
    rec = Receiver(fail_first=2)
    try:
        jid = upload(h, webhook_url=rec.url).get_json()["id"]
        h.drain()
        h.drain()                                            # a duplicate redelivery changes nothing
        assert [c for _, _, c in rec.requests] == [500, 500, 200]
        ids = {{k.lower(): v for k, v in hd.items()}["webhook-id"] for hd, _, _ in rec.requests}
        assert ids == {f"msg_{jid}_completed"}
        from service.webhooks import verify
        secret = h.client.get("/v1/webhook-secret", headers=AUTH_A).get_json()["secret"]
        for hd, body, _ in rec.requests:
            ev = verify(secret, hd, body)
            assert ev["type"] == "job.completed" and ev["data"]["id"] == jid and ev["data"]["text"]
        j = h.client.get(f"/v1/jobs/{jid}", headers=AUTH_A).get_json()
        assert j["webhook"]["status"] == "delivered"
        assert [(a["attempt"], a["success"], a["status_code"]) for a in j["webhook"]["attempts"]] == \
            [(1, False, 500), (2, False, 500), (3, True, 200)]
    finally:
        rec.close()


def test_batch_items_counts_and_batch_webhook(h, tmp_path):
    rec = Receiver()
    try:
        ids = []
        for n in range(3):
            ids.append(upload(h).get_json()["id"])  # noqa: F841 - unrelated jobs
        r = h.client.post("/v1/batches", json={"items": [{"s3_uri": "s3://b/a.wav"}, {"s3_uri": "s3://b/b.wav"}],
                                               "webhook_url": rec.url, "max_tokens": 4}, headers=AUTH_A)
        assert r.status_code == 202, r.get_json()
        b = r.get_json()
        assert b["total"] == 2 and b["counts"]["queued"] == 2 and b["priority"] == "bulk"
        assert [s[2] for s in h.sent[-2:]] == ["bulk", "bulk"]

        class S3:
            def head(self, uri):
                return 10

            def download(self, uri, f):
                f.write(wav_bytes(0.25))
        h.deps.s3input = S3()
        h.drain()
        b2 = h.client.get(f"/v1/batches/{b['id']}?limit=1", headers=AUTH_A).get_json()
        assert b2["status"] == "completed" and b2["counts"]["completed"] == 2
        assert len(b2["jobs"]["data"]) == 1 and b2["jobs"]["has_more"]
        assert b2["jobs"]["data"][0]["options"]["max_tokens"] == 4
        assert len(rec.requests) == 1 and json.loads(rec.requests[0][1])["type"] == "batch.completed"
        err(h.client.get(f"/v1/batches/{b['id']}", headers=AUTH_B), 404, "not_found")
        err(h.client.post("/v1/batches", json={"items": [], "s3_prefix": "s3://b/"}, headers=AUTH_A), 400,
            "invalid_request")
        err(h.client.post("/v1/batches", json={"items": [{"audio_url": "http://10.0.0.1/x.wav"}]}, headers=AUTH_A),
            400, "url_not_allowed")
    finally:
        rec.close()


def test_upload_batch(h):
    b = h.client.post("/v1/batches", json={"upload_count": 2}, headers=AUTH_A).get_json()
    j1 = upload(h, batch_id=b["id"]).get_json()
    upload(h, batch_id=b["id"])
    err(upload(h, batch_id=b["id"]), 409, "batch_full")
    err(upload(h, auth=AUTH_B, batch_id=b["id"]), 404, "not_found")
    assert j1["batch_id"] == b["id"] and j1["priority"] == "bulk"
    h.drain()
    assert h.client.get(f"/v1/batches/{b['id']}", headers=AUTH_A).get_json()["status"] == "completed"


def test_openai_sync_endpoint(h):
    stop = threading.Event()

    def worker():
        while not stop.is_set():
            h.drain()
            stop.wait(0.02)
    t = threading.Thread(target=worker, daemon=True)
    t.start()
    try:
        r = h.client.post("/v1/audio/transcriptions", data={"file": (io.BytesIO(wav_bytes()), "a.wav"),
                                                           "model": "kimi-audio", "response_format": "text"},
                          headers=AUTH_A, content_type="multipart/form-data")
        assert r.status_code == 200 and r.get_data(as_text=True) == "stub 0.50s"
        r = h.client.post("/v1/audio/transcriptions", data={"file": (io.BytesIO(b"junk"), "a.wav")},
                          headers=AUTH_A, content_type="multipart/form-data")
        err(r, 422, "audio_undecodable")
    finally:
        stop.set()
        t.join()


def test_health_metrics_openapi(h):
    assert h.client.get("/healthz").get_json() == {"status": "ok"}
    r = h.client.get("/readyz")
    assert r.status_code == 503 and r.get_json()["checks"]["workers"]["ok"] is False
    h.store.heartbeat("w1", 10)
    assert h.client.get("/readyz").status_code == 200
    upload(h)
    h.drain()
    m = h.client.get("/metrics").get_data(as_text=True)
    for name in ("kimi_queue_depth{queue=\"bulk\"}", "kimi_jobs{status=\"completed\"} 1.0",
                 "kimi_audio_seconds_processed_total 0.5", "kimi_job_latency_seconds_bucket",
                 "kimi_job_real_time_factor_count 1.0", "kimi_http_requests_total"):
        assert name in m, name
    spec = h.client.get("/openapi.json").get_json()
    assert "/v1/jobs" in spec["paths"] and "/v1/audio/transcriptions" in spec["paths"]


def test_wait_for_helper():
    assert wait_for(lambda: 1) == 1
