#!/usr/bin/env python3
"""A scripted stand-in for the panel's remote API, for the remote client's tests.

This is a TEST DOUBLE for the Pterodactyl panel, written from
shared/docs/pterodactyl-protocol.md (§1.3, §3); it is not the panel and implements
none of its logic. It answers every request from a script and records what it got, so
a test can check the wire format and the client's retry behaviour against a real HTTP
server on 127.0.0.1.

    fake_panel.py --log FILE [--port N] [--start-after SECONDS] STEP [STEP...]

It prints the port it listens on (one line, on stdout) once it accepts connections.
Each request takes the next STEP; the last one repeats. A STEP is:

    204 / 200 / 400 / 403 / 404 / 500 / 503 ...   that status; errors carry the panel's
                                                   {"errors":[{code,status,detail}]} body
    429:S / 503:S        that status with "Retry-After: S"
    close                read the request, then reset the connection with no answer
    slow:S               wait S seconds, then answer 204
    parts:P[:M]          200 {"parts":[url...], "part_size":P} with ceil(size/P) urls
                         for the query's size; with M, also "max_concurrent_uploads":M
    s3parts:P:BASE       like parts:P, the urls being BASE/part/<n>?sig=<uuid>-<n>
                         (BASE is a fake part store, e.g. http://127.0.0.1:PORT)
    garbage              200 with a body that is not JSON
    json:TEXT            200 with TEXT as the body

Every request is appended to FILE, one JSON object a line, before it is answered:
{"t": unix time, "method", "path" (with query), "headers": {lower-case name: value},
"body": parsed JSON or null, "raw": body text}.

The process exits when its stdin reaches EOF, so a test that dies never leaves it behind.
"""

import argparse
import json
import math
import os
import socket
import struct
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

from helper_server import serve


class State:
    def __init__(self, steps, log_path):
        self.steps = steps
        self.index = 0
        self.lock = threading.Lock()
        self.log_path = log_path

    def next_step(self):
        with self.lock:
            step = self.steps[min(self.index, len(self.steps) - 1)]
            self.index += 1
            return step

    def record(self, entry):
        with self.lock:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
                f.flush()
                os.fsync(f.fileno())


REASONS = {
    400: ("BadRequestHttpException", "Bad request."),
    401: ("HttpException", "Access to this endpoint must include an Authorization header."),
    403: ("AccessDeniedHttpException", "You are not authorized to access this resource."),
    404: ("NotFoundHttpException", "The requested resource could not be found on the server."),
    409: ("ConflictHttpException", "This backup is already in a completed state."),
    429: ("TooManyRequestsHttpException", "Too Many Attempts."),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-panel"

    def log_message(self, fmt, *args):  # keep the test output quiet
        pass

    def _handle(self):
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {}
        for name, value in self.headers.items():
            key = name.lower()
            # a header sent twice shows up joined, so a test sees the duplicate
            headers[key] = headers[key] + ", " + value if key in headers else value
        step = state.next_step()
        state.record({"t": time.time(), "method": self.command, "path": self.path,
                      "headers": headers, "body": body, "raw": raw, "step": step})

        kind, _, arg = step.partition(":")
        if kind == "close":
            # RST instead of FIN: the client sees a reset, not a clean end
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if kind == "slow":
            time.sleep(float(arg or "5"))
            return self._send(204)
        if kind == "parts":
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            size = int(query.get("size", ["0"])[0])
            part_size = int(arg.split(":")[0])
            n = math.ceil(size / part_size)
            bid = urllib.parse.urlsplit(self.path).path.rstrip("/").split("/")[-1]
            out = {"parts": ["http://s3.invalid/bucket/srv/%s.tar.gz?partNumber=%d&uploadId=u"
                             % (bid, i + 1) for i in range(n)], "part_size": part_size}
            if ":" in arg:
                out["max_concurrent_uploads"] = int(arg.split(":")[1])
            return self._send(200, json.dumps(out).encode())
        if kind == "s3parts":
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            size = int(query.get("size", ["0"])[0])
            psize, _, base = arg.partition(":")
            part_size = int(psize)
            n = math.ceil(size / part_size)
            bid = urllib.parse.urlsplit(self.path).path.rstrip("/").split("/")[-1]
            out = {"parts": ["%s/part/%d?sig=%s-%d" % (base.rstrip("/"), i + 1, bid, i + 1)
                             for i in range(n)], "part_size": part_size}
            return self._send(200, json.dumps(out).encode())
        if kind == "garbage":
            return self._send(200, b"<html>not json</html>", "text/html")
        if kind == "json":
            return self._send(200, arg.encode())
        code = int(kind)
        extra = {"Retry-After": arg} if arg else {}
        if code >= 400:
            exc, detail = REASONS.get(code, ("HttpException", "An error was encountered."))
            err = {"errors": [{"code": exc, "status": str(code), "detail": detail}]}
            return self._send(code, json.dumps(err).encode(), extra=extra)
        return self._send(code, b"" if code == 204 else b"{}", extra=extra)

    def _send(self, code, payload=b"", ctype="application/json", extra=None):
        self.send_response(code)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if code != 204:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if code != 204 and payload:
            self.wfile.write(payload)

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_DELETE = _handle


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--start-after", type=float, default=0.0)
    ap.add_argument("script", nargs="+")
    args = ap.parse_args()
    serve(Handler, State(args.script, args.log), args.port, args.start_after)


if __name__ == "__main__":
    main()
