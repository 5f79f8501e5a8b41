"""`python -m worker [celery worker options]`: the worker with the service's defaults.

Consumes interactive, webhooks, bulk (in that priority) with a threads pool of
KIMI_WORKER_CONCURRENCY over one Transcriber.
"""
from __future__ import annotations

import sys

from service.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    s = get_settings()
    s.validate_worker()
    from worker.celery_app import app
    args = ["worker", "--pool", "threads", "--concurrency", str(s.worker_concurrency),
            "-Q", ",".join(s.worker_queues), "--without-gossip", "--without-mingle",
            "--loglevel", s.log_level, *(sys.argv[1:] if argv is None else argv)]
    app.worker_main(args)


if __name__ == "__main__":
    main()
