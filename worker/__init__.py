"""Celery worker: consumes the interactive, webhooks and bulk queues with one Transcriber per process."""
