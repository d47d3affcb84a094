"""Prometheus metrics of one app, in its own registry (two apps in one process, as in the tests,
never share counters).

* ``selfheal_http_requests_total{endpoint, method, status}``: every HTTP request, by its route
  template (``/v1/threads/{thread_id}/resume``), never by a raw path (no unbounded labels);
* ``selfheal_http_request_seconds{endpoint}``: latency histogram;
* ``selfheal_decisions_total{route, via}``: log records this server wrote, by the route
  ConfidenceCheckNode took and how the request ended (``vocabulary.ROUTES`` x ``VIAS``);
* ``selfheal_pending_requests``: paused requests in the checkpointer (questions and the review
  queue), counted when scraped;
* ``selfheal_inflight``: graph calls running now; ``selfheal_rejected_total``: 503s for load.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The app's counters, histogram and gauges."""

    def __init__(self, pending: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "selfheal_http_requests",
            "HTTP requests by endpoint, method and status code.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "selfheal_http_request_seconds",
            "HTTP request latency by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "selfheal_decisions",
            "Decision records written by this server, by graph route and via.",
            ["route", "via"],
            registry=self.registry,
        )
        self.inflight = Gauge("selfheal_inflight", "Graph calls running now.", registry=self.registry)
        self.rejected = Counter(
            "selfheal_rejected", "Requests refused with 503 (too many in flight).", registry=self.registry
        )
        pending_gauge = Gauge(
            "selfheal_pending_requests",
            "Paused requests (open questions and the review queue).",
            registry=self.registry,
        )
        pending_gauge.set_function(pending)

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Count one HTTP request and its latency."""
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def decision(self, record: dict[str, Any] | None) -> None:
        """Count one log record written."""
        if record:
            route = str(record.get("confidence_check", {}).get("route"))
            via = str(record.get("final_decision", {}).get("via"))
            self.decisions.labels(route, via).inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
