"""A tiny webhook receiver for the docker-compose demo.

It logs every CloudEvent sidebus delivers (the ce-* attribute headers, the Standard Webhooks
headers and the body) and answers 204, so the delivery counts as done. GET /healthz answers 200
for the compose healthcheck. Standard library only: runs on python:3-slim as is.
"""

import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOGGED = ("content-type", "traceparent", "tracestate")
MAX_BODY_LOGGED = 4096
# One request's lines stay together in the log.
OUTPUT = threading.Lock()


class Receiver(BaseHTTPRequestHandler):
    server_version = "sidebus-demo-receiver"

    def do_GET(self):
        if self.path == "/healthz":
            self._answer(200, b"ok\n")
        else:
            self._answer(404, b"not found\n")

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        lines = [f"--- {self.command} {self.path} ({length} bytes)"]
        for name, value in self.headers.items():
            lower = name.lower()
            if lower.startswith(("ce-", "webhook-")) or lower in LOGGED:
                lines.append(f"{lower}: {value}")
        text = body[:MAX_BODY_LOGGED].decode("utf-8", errors="replace")
        if length > MAX_BODY_LOGGED:
            text += " ..."
        lines.append(text)
        with OUTPUT:
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()
        self._answer(204, b"")

    def _answer(self, status, body):
        self.send_response(status)
        if body:
            self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        # The POST handler logs what matters; keep the access log off stdout.
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


def main():
    port = int(os.environ.get("PORT", "8080"))
    host = os.environ.get("HOST", "0.0.0.0")
    server = ThreadingHTTPServer((host, port), Receiver)
    print(f"receiver listening on {host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
