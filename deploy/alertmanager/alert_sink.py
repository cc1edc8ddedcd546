"""A stand-in webhook receiver for the compose stack: prints what Alertmanager sends.

Alertmanager's receivers in ``alertmanager.yml`` point here (``http://alert-sink:9095/<receiver>``)
until you replace them with your pager, ticketing and SOC webhooks.  Each alert of each
notification is printed as one JSON line (receiver path, status, labels, summary), so
``docker compose logs alert-sink`` shows what would have paged whom.  Requests must carry the
bearer token from ``ALERT_SINK_TOKEN_FILE`` (the same secret Alertmanager sends, read per
request so a rotated token needs no restart); others get 401.  Standard library only.
"""

from __future__ import annotations

import hmac
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TOKEN_FILE = Path(os.environ.get("ALERT_SINK_TOKEN_FILE", "/run/secrets/alert_webhook_token"))


def expected_auth() -> str:
    return "Bearer " + TOKEN_FILE.read_text(encoding="utf-8").strip()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not hmac.compare_digest(self.headers.get("Authorization", ""), expected_auth()):
            self._reply(401, b"missing or wrong bearer token\n")
            return
        try:
            doc = json.loads(body)
        except ValueError:
            self._reply(400, b"not JSON\n")
            return
        for alert in doc.get("alerts", []):
            line = {
                "receiver": self.path.strip("/"),
                "status": alert.get("status"),
                "labels": alert.get("labels", {}),
                "summary": alert.get("annotations", {}).get("summary"),
            }
            print(json.dumps(line, sort_keys=True), flush=True)
        self._reply(200, b"ok\n")

    def do_GET(self) -> None:
        self._reply(200 if self.path == "/healthz" else 404, b"ok\n" if self.path == "/healthz" else b"not found\n")

    def _reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> int:
    host = os.environ.get("ALERT_SINK_HOST", "0.0.0.0")
    port = int(os.environ.get("ALERT_SINK_PORT", "9095"))
    server = ThreadingHTTPServer((host, port), Handler)
    print(f"alert-sink listening on {host}:{server.server_address[1]}", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
