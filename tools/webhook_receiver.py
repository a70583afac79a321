#!/usr/bin/env python3
"""A webhook receiver for Roster's tests (tests/api/webhooks.rs): a threaded HTTP server on
127.0.0.1 that verifies every delivery with the `standardwebhooks` package from PyPI
(tools/requirements.txt, installed into target/tools-venv by tools/deps.sh) and keeps what
it received, so a test can read it back.

    python tools/webhook_receiver.py --port 0 [--secret whsec_... ...]

The first line on stdout is the port it listens on. Routes:

    POST <any other path>  a delivery: verified with each known secret (webhook-id,
                           webhook-timestamp, webhook-signature over the raw body), recorded,
                           and answered with the current mode's status (400 when no secret
                           verifies it and the mode is a 2xx, as a real receiver would)
    GET  /received         every delivery so far, oldest first, as JSON: {"requests": [...]}
    POST /secrets          {"secret": "whsec_..."}: one more secret to verify with (a rotated one)
    POST /mode             {"status": 503, "delay_ms": 0, "location": null, "path": null}: how
                           to answer deliveries from now on (after a delay; with a Location
                           header); to one path only when `path` is given
    POST /reset            forget what was received

Each recorded delivery: path, webhook_id, webhook_timestamp, webhook_signature, type (the
body's), verified (some secret verifies it), verified_by (each secret that verifies it on
its own), error (why none does), status (what it answered), received_at (unix seconds), body
(the parsed JSON, or the raw text).

Only for tests: it echoes the secrets it knows in `verified_by`.
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

ADMIN_PATHS = ("/received", "/secrets", "/mode", "/reset")


class State:
    def __init__(self, secrets):
        self.lock = threading.Lock()
        self.secrets = list(secrets)
        # How to answer: per path, and for every other path under None.
        self.modes = {None: {"status": 200, "delay_ms": 0, "location": None}}
        self.received = []


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A sender that hangs up mid-request (a `roster serve` killed by a test) is no error here.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    server_version = "RosterTestReceiver/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass

    @property
    def state(self) -> State:
        return self.server.state

    def answer(self, status, body=b"", content_type="text/plain", location=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            content_type = "application/json"
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(body)

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self):
        if self.path == "/received":
            with self.state.lock:
                return self.answer(200, {"requests": list(self.state.received)})
        self.answer(404, "not found")

    def do_POST(self):
        body = self.read_body()
        path = self.path.split("?", 1)[0]
        if path in ADMIN_PATHS:
            return self.admin(path, body)
        self.delivery(path, body)

    def admin(self, path, body):
        try:
            request = json.loads(body) if body else {}
        except ValueError as e:
            return self.answer(400, f"not JSON: {e}")
        with self.state.lock:
            if path == "/secrets":
                secret = request.get("secret")
                if not isinstance(secret, str) or not secret.startswith("whsec_"):
                    return self.answer(400, "secret must be a whsec_ string")
                if secret not in self.state.secrets:
                    self.state.secrets.append(secret)
            elif path == "/mode":
                self.state.modes[request.get("path")] = {
                    "status": int(request.get("status", 200)),
                    "delay_ms": int(request.get("delay_ms", 0)),
                    "location": request.get("location"),
                }
            elif path == "/reset":
                self.state.received.clear()
            else:
                return self.answer(405, "GET it")
        self.answer(204)

    def delivery(self, path, body):
        received_at = time.time()
        headers = {k.lower(): v for k, v in self.headers.items()}
        with self.state.lock:
            secrets = list(self.state.secrets)
            mode = self.state.modes.get(path) or self.state.modes[None]
            status, delay_ms, location = mode["status"], mode["delay_ms"], mode["location"]
        verified_by, errors = [], []
        for secret in secrets:
            try:
                Webhook(secret).verify(body, headers, json_parse=False)
                verified_by.append(secret)
            except WebhookVerificationError as e:
                errors.append(str(e))
            except Exception as e:  # a malformed secret or header: not verified
                errors.append(f"{type(e).__name__}: {e}")
        if not secrets:
            errors.append("no secret known yet")
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = body.decode("utf-8", "replace")
        verified = bool(verified_by)
        if not verified and 200 <= status < 300:
            status = 400
        record = {
            "path": path,
            "webhook_id": headers.get("webhook-id"),
            "webhook_timestamp": headers.get("webhook-timestamp"),
            "webhook_signature": headers.get("webhook-signature"),
            "content_type": headers.get("content-type"),
            "user_agent": headers.get("user-agent"),
            "type": parsed.get("type") if isinstance(parsed, dict) else None,
            "verified": verified,
            "verified_by": verified_by,
            "error": None if verified else "; ".join(errors),
            "status": status,
            "received_at": received_at,
            "body": parsed,
        }
        with self.state.lock:
            self.state.received.append(record)
        if delay_ms:
            time.sleep(delay_ms / 1000)
        self.answer(status, "ok" if 200 <= status < 300 else f"answering {status}", location=location)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed first)")
    parser.add_argument("--secret", action="append", default=[], help="whsec_... (repeatable)")
    args = parser.parse_args()
    server = Server(("127.0.0.1", args.port), Handler)
    server.state = State(args.secret)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
