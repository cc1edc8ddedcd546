"""Response headers every answer carries, and request counting.

A pure ASGI middleware (it adds headers to ``http.response.start``), so streaming answers
(the SSE feed) pass through untouched.  The policy: scripts, styles and images from this
origin only (no inline script or style anywhere in the console), no framing, no referrer
(the "this wasn't me" URL carries a token), and ``no-store`` for everything but the
versioned static files, so an authenticated page is never cached by a browser or proxy.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from secmon.api.context import ApiMetrics

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")  # fmt: skip
_BASE = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        static = path.startswith("/static/")
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = [h for h in message.get("headers", []) if h[0].lower() != b"cache-control"
                                      or static]  # fmt: skip
                headers.extend(_BASE)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                if https:
                    headers.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
                message["headers"] = headers
                if self.metrics is not None:
                    route = scope.get("route")
                    template = getattr(route, "path", None) or ("/static" if static else "unmatched")
                    self.metrics.requests.labels(template, scope.get("method", ""),
                                                 f"{message['status'] // 100}xx").inc()  # fmt: skip
            await send(message)

        await self.app(scope, receive, send_with_headers)
