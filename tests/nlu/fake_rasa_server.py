"""A stand-in Rasa NLU server for process-level tests (``python fake_rasa_server.py PORT TOKEN``).

Speaks the two endpoints the application uses (``GET /status``, ``POST /model/parse``) with
Rasa's token check and response shape; intents come from keywords. It is a real separate
process so tests can kill it mid-conversation like a crashed Rasa.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

KEYWORDS = {
    "order": "order_status",
    "订单": "order_status",
    "broken": "report_fault",
    "坏": "report_fault",
}


class Handler(BaseHTTPRequestHandler):
    token = ""

    def _authorised(self) -> bool:
        query = parse_qs(urlparse(self.path).query)
        if query.get("token", [""])[0] != self.token:
            self._send(401, {"message": "User is not authenticated."})
            return False
        return True

    def _send(self, status: int, body: object) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        if urlparse(self.path).path == "/status" and self._authorised():
            self._send(200, {"model_file": "fake.tar.gz", "model_id": "fake"})

    def do_POST(self) -> None:
        if urlparse(self.path).path != "/model/parse" or not self._authorised():
            return
        text = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))["text"]
        intent = next((v for k, v in KEYWORDS.items() if k in text.lower()), "greet")
        self._send(
            200,
            {
                "text": text,
                "intent": {"name": intent, "confidence": 0.99},
                "entities": [],
                "intent_ranking": [{"name": intent, "confidence": 0.99}],
            },
        )

    def log_message(self, *args: object) -> None:
        return None


def main() -> None:
    port, token = int(sys.argv[1]), sys.argv[2]
    Handler.token = token
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
