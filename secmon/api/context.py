"""Everything a request handler needs, built once per app (no module globals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter
from sqlalchemy import Engine

from secmon.alerts.wiring import Console
from secmon.api.auth import Authenticator
from secmon.api.findings import FindingQuery
from secmon.api.ratelimit import SlidingWindow
from secmon.api.settings import ApiSettings
from secmon.api.tokens import TokenStore
from secmon.api.verify import CallerVerifier
from secmon.metrics import Metrics


class ApiMetrics:
    """The API's own metrics, on the shared registry (bounded labels: route template, outcome)."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.requests = Counter("secmon_api_requests", "API and console requests", ["route", "method", "status"],
                                registry=r)  # fmt: skip
        self.auth_failures = Counter("secmon_api_auth_failures", "Rejected credentials", ["via"], registry=r)
        self.verifications = Counter("secmon_api_caller_verifications", "Caller verification attempts",
                                     ["outcome"], registry=r)  # fmt: skip


@dataclass
class ApiContext:
    settings: ApiSettings
    engine: Engine
    console: Console
    findings: FindingQuery
    tokens: TokenStore
    auth: Authenticator
    verifier: CallerVerifier
    clock: Callable[[], int]
    metrics: Metrics
    api_metrics: ApiMetrics
    not_me_limit: SlidingWindow
    login_limit: SlidingWindow
