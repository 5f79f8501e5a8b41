from kimi_model.errors import AudioDecodeError, KimiError
from service.storage import StorageError

from .test_api import upload


def test_permanent_error_fails_at_once(h):
    jid = upload(h).get_json()["id"]
    h.transcriber.fail_with = [AudioDecodeError("garbage")]
    h.drain()
    j = h.store.get_job(jid)
    assert j["status"] == "failed" and j["error_code"] == "audio_undecodable" and j["attempts"] == "1"


def test_transient_error_retries_then_succeeds(h):
    jid = upload(h).get_json()["id"]
    h.transcriber.fail_with = [StorageError("s3 down"), KimiError("engine hiccup")]
    h.drain()
    j = h.store.get_job(jid)
    assert j["status"] == "completed" and j["attempts"] == "3" and j["last_error_code"] == "internal_error"


def test_transient_error_exhausts_retries(tmp_path):
    from .conftest import Harness
    h = Harness(tmp_path, task_max_retries=1)
    jid = upload(h).get_json()["id"]
    h.transcriber.fail_with = [StorageError("down")] * 5
    h.drain()
    j = h.store.get_job(jid)
    assert j["status"] == "failed" and j["error_code"] == "storage_error"


def test_redelivered_message_is_a_noop(h):
    jid = upload(h).get_json()["id"]
    h.sent.append(h.sent[0])                 # the broker delivers twice
    out = h.drain()
    assert [o[2] for o in out] == ["completed", "completed"]   # 2nd: claim says already completed
    assert len(h.transcriber.calls) == 1
    assert h.store.stats()["completed_total"] == 1
    assert h.store.get_job(jid)["attempts"] == "1"


def test_priority_passed_to_engine(h):
    upload(h, priority="bulk")
    upload(h)
    h.drain()
    assert sorted(c[2] for c in h.transcriber.calls) == [0, 1]


def test_job_the_api_never_enqueued_is_enqueued_by_the_janitor(tmp_path):
    from worker.tasks import janitor_tick

    from .conftest import Harness
    h = Harness(tmp_path, enqueue_grace_s=0.0)
    jid = upload(h).get_json()["id"]
    assert h.store.unenqueued(0.0) == []                          # the API's enqueue was confirmed
    h.drain()
    # the API process died between writing the job and sending its message:
    h.store.create_job({"id": "job_orphan", "tenant": h.store.get_job(jid)["tenant"], "source": "upload",
                        "audio_key": h.store.get_job(jid)["audio_key"], "options": {}})
    janitor_tick(h.deps)
    assert [s[:3] for s in h.sent] == [("kimi.transcribe", ["job_orphan"], "interactive")]
    janitor_tick(h.deps)
    assert len(h.sent) == 1                                        # enqueued once, not every tick
    h.drain()
    assert h.store.get_job("job_orphan")["status"] == "completed"


def test_redelivered_webhook_attempt_resumes_the_schedule(h):
    from worker.tasks import deliver_webhook
    jid = upload(h, webhook_url="http://127.0.0.1:9/hook").get_json()["id"]
    key = h.store.jk(jid)
    assert h.store.webhook_prepare(key, "msg", "{}")
    assert h.store.webhook_claim(key, 1) == "claimed"
    h.store.webhook_record(key, {"attempt": 1, "success": False}, None)   # then the worker died
    h.sent.clear()
    assert deliver_webhook(h.deps, key, 1) == "retry"
    assert [s[:3] for s in h.sent] == [("kimi.webhook", [key, 2], "webhooks")]


def test_redelivery_after_a_crash_between_finish_and_webhook_fires_it_once(h):
    from worker.tasks import process_job
    jid = upload(h, webhook_url="http://127.0.0.1:9/hook").get_json()["id"]
    h.sent.clear()
    assert h.store.claim(jid, "tok", "w-dead") == "claimed"
    assert h.store.finish(jid, "tok", "completed", {"transcript_key": "none"}) == 1   # then SIGKILL
    assert process_job(h.deps, jid) == "completed"                 # the broker redelivers
    assert [s[:3] for s in h.sent] == [("kimi.webhook", [h.store.jk(jid), 1], "webhooks")]
    assert process_job(h.deps, jid) == "completed"                 # and again: already armed
    assert len(h.sent) == 1
