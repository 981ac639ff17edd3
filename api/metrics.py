"""Prometheus metrics, one registry per app (tests build many apps; no global default registry).

``GET /metrics`` is unauthenticated: it holds route templates, strategies and model versions,
never ids or keys. Block it at the reverse proxy if the API is exposed beyond the portal's
network.

Several gunicorn workers: each is its own process with its own counters. Set
``PROMETHEUS_MULTIPROC_DIR`` to an empty writable folder before ``newsrec serve`` and the
counters and histograms of all workers are summed on every scrape (``api/gunicorn_conf.py``
empties the folder at start and marks dead workers). Without it, a scrape shows the one
worker that answered. Engine gauges (model version, degraded) are always per worker.
"""

from __future__ import annotations

import logging
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class EngineStatusCollector:
    """Reads ``engine.status()`` at scrape time, so the gauges are never stale."""

    def __init__(self, status: Callable[[], dict]):
        self._status = status

    def describe(self):
        return []  # values come from the engine at scrape time; nothing to check at registration

    def collect(self):
        try:
            status = self._status()
        except Exception:  # a scrape must not fail because the engine is unhappy
            log.exception("engine.status() failed during a metrics scrape")
            return
        info = GaugeMetricFamily("newsrec_model_info", "Model bundle this worker serves (1 = loaded)",
                                 labels=["version"])
        info.add_metric([status.get("model_version") or "none"], 1.0 if status.get("model_version") else 0.0)
        yield info
        yield GaugeMetricFamily("newsrec_degraded", "1 while serving fallback lists (see /readyz reasons)",
                                value=1.0 if status.get("degraded") else 0.0)
        yield GaugeMetricFamily("newsrec_last_reload_failed", "1 if the last model reload failed",
                                value=1.0 if status.get("last_reload_error") else 0.0)
        yield GaugeMetricFamily("newsrec_write_notices_lost", "1 while this worker has lost the database's notices "
                                "of writes (its lists may lag other hosts' by up to NEWSREC_LAG_SECONDS)",
                                value=1.0 if str(status.get("write_notices", "")).startswith("lost") else 0.0)
        yield GaugeMetricFamily("newsrec_articles_in_window", "Articles the rankers can recommend",
                                value=float(status.get("articles_in_window") or 0))
        failures = CounterMetricFamily("newsrec_plugin_failures", "Lists a bring-your-own plugin failed on (served "
                                       "without it), this worker, since its model loaded", labels=["plugin", "role"])
        for name, row in (status.get("plugin_errors") or {}).items():
            failures.add_metric([name, row["role"]], float(row["errors"]))
        yield failures


class Metrics:
    """The app's counters and histograms (``app.extensions["newsrec.metrics"]``).

    Parameters
    ----------
    status : callable returning dict
        ``engine.status``.
    multiprocess : bool
        True when ``PROMETHEUS_MULTIPROC_DIR`` is set: values go to shared files and a
        scrape sums every worker.
    """

    def __init__(self, status: Callable[[], dict], multiprocess: bool = False):
        self.multiprocess = multiprocess
        self.registry = CollectorRegistry()
        target = None if multiprocess else self.registry
        self.requests = Counter("newsrec_http_requests", "HTTP requests by route template, method and status",
                                ["endpoint", "method", "status"], registry=target)
        self.latency = Histogram("newsrec_http_request_duration_seconds", "HTTP request latency",
                                 ["endpoint", "method", "status"], buckets=LATENCY_BUCKETS, registry=target)
        self.lists = Counter("newsrec_lists_served", "Recommendation lists served by endpoint and strategy",
                             ["endpoint", "strategy"], registry=target)
        self.fallbacks = Counter("newsrec_fallback_lists", "Lists served without a model or by a fallback strategy",
                                 ["strategy"], registry=target)
        self.feed_cache = Counter("newsrec_feed_cache_lookups", "First feed pages by whether the per-reader cache "
                                  "served them (hit) or they were built (miss)", ["result"], registry=target)
        self._feed_cache_children = {result: self.feed_cache.labels(result) for result in ("hit", "miss")}
        self.reload_failures = Counter("newsrec_model_reload_failures", "Failed POST /v1/admin/reload calls",
                                       registry=target)
        self._status_collector = EngineStatusCollector(status)
        self.registry.register(self._status_collector)
        # Labelled children by label values: ``labels()`` checks and locks on every call, a dict
        # lookup does not. prometheus_client keeps every child anyway, so this adds no growth.
        self._request_children: dict[tuple, tuple] = {}
        self._list_children: dict[tuple, tuple] = {}

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        children = self._request_children.get((endpoint, method, status))
        if children is None:
            labels = (endpoint, method, str(status))
            children = self._request_children.setdefault(
                (endpoint, method, status), (self.requests.labels(*labels), self.latency.labels(*labels)))
        children[0].inc()
        children[1].observe(seconds)

    def observe_list(self, endpoint: str, strategy: str, model_version: str | None) -> None:
        key = (endpoint, strategy, model_version is None)
        children = self._list_children.get(key)
        if children is None:
            fallback = model_version is None or strategy.startswith("fallback")
            children = self._list_children.setdefault(
                key, (self.lists.labels(endpoint, strategy), self.fallbacks.labels(strategy) if fallback else None))
        children[0].inc()
        if children[1] is not None:
            children[1].inc()

    def observe_feed_cache(self, result: str | None) -> None:
        """Count a first page by ``RankedList.cache`` ("hit" or "miss"; None is not counted)."""
        child = self._feed_cache_children.get(result)
        if child is not None:
            child.inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            registry.register(self._status_collector)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
