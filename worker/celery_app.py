"""The Celery application (broker: Redis). Imported by the API too, to send tasks.

Why a *threads* pool with concurrency N: a worker process holds exactly one Transcriber
(one vLLM engine: model weights, KV cache). Prefork would load one engine per child;
a threads pool lets N tasks call the same BlockingTranscriber at once, and vLLM's
continuous batching then decodes those N requests together in one batch - the GPU (or
CPU) is used N-wide for the memory cost of one engine.

Delivery guarantees: ``acks_late`` + ``task_reject_on_worker_lost`` + prefetch 1 - a
message is acked only when its task ends, so a killed worker's jobs are redelivered
(after the visibility timeout; sooner through the job-lease janitor, see tasks.py).
``visibility_timeout`` must exceed the task time limit and every countdown, or Redis would
redeliver running work; ``worker_init`` checks that and refuses to start otherwise.

Priority: the worker consumes ``-Q interactive,webhooks,bulk`` with kombu's
``queue_order_strategy='priority'``: each fetch takes from the first non-empty queue in
that order, so a bulk backlog never delays an interactive job by more than the jobs already
running. Bulk jobs also get a lower vLLM scheduling priority.
"""
from __future__ import annotations

from celery import Celery
from kombu import Queue

from service.settings import get_settings

QUEUES = ("interactive", "webhooks", "bulk")


def make_app(settings=None) -> Celery:
    s = settings or get_settings()
    app = Celery("kimi_asr", broker=s.redis_url, include=["worker.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_queues=[Queue(q) for q in QUEUES],
        task_default_queue="interactive",
        task_time_limit=int(s.task_time_limit_s) + 60,   # enforced by prefork only; tasks.py enforces its own
        broker_transport_options={
            "visibility_timeout": s.visibility_timeout_s,
            "queue_order_strategy": "priority",
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_concurrency=s.worker_concurrency,
        worker_pool="threads",
        task_serializer="json",
        accept_content=["json"],
        enable_utc=True,
    )
    return app


app = make_app()
