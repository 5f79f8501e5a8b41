import time

from service.jobs import new_id

from .conftest import Harness


def _job(h, tenant="t_a", **kw):
    j = {"id": new_id("job"), "tenant": tenant, "source": "upload", "options": {}, "priority": "interactive"}
    j.update(kw)
    h.store.create_job(j)
    return j["id"]


def test_claim_finish_exactly_once(tmp_path):
    h = Harness(tmp_path)
    jid = _job(h)
    assert h.store.claim(jid, "tok1", "w1") == "claimed"
    assert h.store.claim(jid, "tok2", "w2") == "busy"            # redelivery while alive
    assert h.store.finish(jid, "tok2", "completed", {}) == 0      # not the lease holder
    assert h.store.finish(jid, "tok1", "completed", {"duration_s": 1.0}) == 1
    assert h.store.finish(jid, "tok1", "completed", {}) == 0      # twice: no
    assert h.store.claim(jid, "tok3", "w3") == "completed"
    st = h.store.stats()
    assert st["completed"] == 1 and st["processing"] == 0 and st["queued"] == 0
    assert int(h.store.get_job(jid)["attempts"]) == 1


def test_lapsed_lease_of_a_dead_worker_is_requeued_and_reclaimed(tmp_path):
    h = Harness(tmp_path, lease_s=0.2)
    jid = _job(h)
    assert h.store.claim(jid, "dead", "w1") == "claimed"
    time.sleep(0.3)                                               # w1 never sent a heartbeat
    assert h.store.orphaned_jobs() == [jid]
    assert h.store.orphaned_jobs() == []                          # requeue gate: once per lease period
    assert h.store.claim(jid, "new", "w2") == "claimed"
    assert not h.store.renew(jid, "dead")                         # the old token cannot come back
    assert h.store.finish(jid, "dead", "completed", {}) == 0      # the dead worker's token lost
    assert h.store.finish(jid, "new", "completed", {}) == 1
    assert int(h.store.get_job(jid)["attempts"]) == 2


def test_late_renewal_by_a_live_worker_keeps_its_job(tmp_path):
    h = Harness(tmp_path, lease_s=0.2)
    jid = _job(h)
    h.store.heartbeat("w1", 30)
    assert h.store.claim(jid, "slow", "w1") == "claimed"
    time.sleep(0.3)                                               # renewal came late: lease lapsed
    assert h.store.orphaned_jobs() == []                          # but w1 is alive: not stolen
    assert h.store.renew(jid, "slow")                             # and w1 takes its lease back
    assert h.store.claim(jid, "dup", "w2") == "busy"              # a redelivered copy is a no-op
    assert h.store.finish(jid, "slow", "completed", {}) == 1
    assert int(h.store.get_job(jid)["attempts"]) == 1


def test_release_and_cancel(tmp_path):
    h = Harness(tmp_path)
    jid = _job(h)
    h.store.claim(jid, "t", "w")
    assert h.store.release(jid, "t", "storage_error", "boom")
    assert h.store.get_job(jid)["status"] == "queued"
    assert h.store.cancel(jid) == "queued"
    assert h.store.claim(jid, "t2", "w") == "canceled"
    assert h.store.cancel(jid) == "canceled"


def test_batch_completion_fires_once(tmp_path):
    h = Harness(tmp_path)
    bid = new_id("bat")
    ids = [new_id("job") for _ in range(3)]
    h.store.create_batch({"id": bid, "tenant": "t_a", "total": 3}, ids)
    for i in ids:
        h.store.create_job({"id": i, "tenant": "t_a", "source": "url", "batch_id": bid})
    results = []
    for n, i in enumerate(ids):
        h.store.claim(i, f"t{n}", "w")
        results.append(h.store.finish(i, f"t{n}", "completed" if n else "failed", {}))
    assert results == [1, 1, 2]
    assert h.store.batch_counts(bid) == {"queued": 0, "processing": 0, "completed": 2, "failed": 1, "canceled": 0}
    assert h.store.r.hget(h.store.bk(bid), "status") == "completed"


def test_webhook_attempt_claimed_once(tmp_path):
    h = Harness(tmp_path)
    jid = _job(h, webhook_url="http://x")
    key = h.store.jk(jid)
    assert h.store.webhook_prepare(key, "msg", "{}")
    assert not h.store.webhook_prepare(key, "msg", "{}")  # armed once
    assert h.store.webhook_claim(key, 1) == "claimed"
    assert h.store.webhook_claim(key, 1) == "skip"       # redelivered while attempt 1 is in flight
    assert h.store.webhook_claim(key, 3) == "skip"       # out of order
    h.store.webhook_record(key, {"attempt": 1, "success": False}, None)
    assert h.store.webhook_claim(key, 1) == "resume"     # recorded, but its worker died before scheduling 2
    assert h.store.webhook_claim(key, 2) == "claimed"
    h.store.webhook_record(key, {"attempt": 2, "success": True}, "delivered")
    assert h.store.webhook_claim(key, 3) == "skip"
    assert h.store.webhook_claim(key, 2) == "skip"


def test_webhook_attempt_of_a_dead_worker_is_sent_again(tmp_path):
    h = Harness(tmp_path, webhook_timeout_s=0.01)
    jid = _job(h, webhook_url="http://x")
    key = h.store.jk(jid)
    h.store.webhook_prepare(key, "msg", "{}")
    assert h.store.webhook_claim(key, 1) == "claimed"    # the worker dies mid-POST: nothing recorded
    h.redis.hset(key, "wh_claimed_at", repr(time.time() - 31))
    assert h.store.webhook_claim(key, 1) == "claimed"    # the redelivered message sends it again


def test_list_pagination_and_status_filter(tmp_path):
    h = Harness(tmp_path)
    ids = []
    for n in range(7):
        ids.append(_job(h))
        time.sleep(0.002)
    for i in ids[::2]:
        h.store.claim(i, "t", "w")
        h.store.finish(i, "t", "completed", {})
    seen, cursor = [], None
    while True:
        page = h.store.list_jobs("t_a", None, 3, cursor)
        seen += [j["id"] for j in page.items]
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == ids[::-1]
    seen, cursor = [], None
    while True:
        page = h.store.list_jobs("t_a", "completed", 2, cursor)
        seen += [j["id"] for j in page.items]
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == ids[::2][::-1]
    assert h.store.list_jobs("t_other", None, 10, None).items == []


def test_retention_purge(tmp_path):
    h = Harness(tmp_path, job_retention_s=0)
    jid = _job(h)
    h.store.claim(jid, "t", "w")
    h.store.finish(jid, "t", "completed", {})
    time.sleep(0.01)
    assert jid in h.store.expired()
    h.store.purge(jid)
    assert h.store.get_job(jid) is None
    assert h.store.stats()["completed"] == 0
