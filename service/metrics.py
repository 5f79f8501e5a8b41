"""Prometheus metrics shared by every API and worker process through Redis.

Workers observe job metrics into Redis hashes (``kimi:hist:<name>``, ``kimi:stats``); the
API's ``/metrics`` renders them with a custom collector, together with queue depths (LLEN of
the Celery queues) and per-process HTTP metrics. This way N workers and N API processes
report one consistent set of numbers without prometheus multiprocess mode.
"""
from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from service.jobs import STATUSES

P = "kimi:"
LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)
HISTOGRAMS = {
    "job_latency_seconds": ("Job latency, created to finished", LATENCY_BUCKETS),
    "job_queue_wait_seconds": ("Time from created to first start", LATENCY_BUCKETS),
    "job_processing_seconds": ("Transcription time of one job", LATENCY_BUCKETS),
    "job_real_time_factor": ("Processing seconds per audio second", RTF_BUCKETS),
}


def observe(r, name: str, value: float) -> None:
    """Record one observation of a Redis-backed histogram (called by workers)."""
    _help, buckets = HISTOGRAMS[name]
    key = f"{P}hist:{name}"
    with r.pipeline() as p:
        for b in buckets:
            if value <= b:
                p.hincrby(key, f"le_{b}", 1)
        p.hincrby(key, "count", 1)
        p.hincrbyfloat(key, "sum", value)
        p.execute()


class RedisCollector:
    def __init__(self, r, queues=("interactive", "bulk", "webhooks")):
        self.r = r
        self.queues = queues

    def collect(self):
        try:
            stats = {k: float(v) for k, v in self.r.hgetall(f"{P}stats").items()}
            depth = GaugeMetricFamily("kimi_queue_depth", "Messages waiting per Celery queue", labels=["queue"])
            for q in self.queues:
                depth.add_metric([q], self.r.llen(q))
            yield depth
            jobs = GaugeMetricFamily("kimi_jobs", "Jobs currently stored, by status", labels=["status"])
            for s in STATUSES:
                jobs.add_metric([s], max(0.0, stats.get(s, 0.0)))
            yield jobs
            ended = CounterMetricFamily("kimi_jobs_finished", "Jobs that reached a final status",
                                        labels=["status"])
            for s in ("completed", "failed", "canceled"):
                ended.add_metric([s], stats.get(f"{s}_total", 0.0))
            yield ended
            yield CounterMetricFamily("kimi_audio_seconds_processed", "Audio seconds transcribed",
                                      value=stats.get("audio_seconds", 0.0))
            yield CounterMetricFamily("kimi_processing_seconds", "Seconds spent transcribing",
                                      value=stats.get("processing_seconds", 0.0))
            rtf = GaugeMetricFamily("kimi_real_time_factor",
                                    "Overall processing seconds per audio second (lower is faster)")
            a = stats.get("audio_seconds", 0.0)
            rtf.add_metric([], stats.get("processing_seconds", 0.0) / a if a else 0.0)
            yield rtf
            wh = CounterMetricFamily("kimi_webhook_attempts", "Webhook delivery attempts", labels=["result"])
            wh.add_metric(["success"], stats.get("webhook_success", 0.0))
            wh.add_metric(["failure"], stats.get("webhook_failure", 0.0))
            yield wh
            workers = GaugeMetricFamily("kimi_workers_alive", "Workers with a fresh heartbeat")
            workers.add_metric([], sum(1 for _ in self.r.scan_iter(f"{P}worker:*", count=100)))
            yield workers
            for name, (help_, buckets) in HISTOGRAMS.items():
                raw = self.r.hgetall(f"{P}hist:{name}")
                h = HistogramMetricFamily(f"kimi_{name}", help_)
                bs = [(str(b), float(raw.get(f"le_{b}", 0))) for b in buckets]
                bs.append(("+Inf", float(raw.get("count", 0))))
                h.add_metric([], bs, sum_value=float(raw.get("sum", 0)))
                yield h
        except Exception:  # noqa: BLE001 - a scrape must not 500 because Redis is down
            up = GaugeMetricFamily("kimi_redis_up", "Redis reachable from this API process")
            up.add_metric([], 0)
            yield up


def make_registry(r) -> tuple[CollectorRegistry, Counter, Histogram]:
    reg = CollectorRegistry()
    reg.register(RedisCollector(r))
    reqs = Counter("kimi_http_requests", "HTTP requests served by this API process",
                   ["method", "endpoint", "status"], registry=reg)
    lat = Histogram("kimi_http_request_duration_seconds", "HTTP request latency (this API process)",
                    ["method", "endpoint"], registry=reg,
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
    return reg, reqs, lat


def now() -> float:
    return time.time()
