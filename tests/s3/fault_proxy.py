#!/usr/bin/python3
"""An HTTP proxy for the s3 fault-injection test: forwards every request to s3rver
unchanged (Host header included, so SigV4 signatures still verify) except where its
deterministic schedule injects a fault, and logs every request as one JSON line.

    fault_proxy.py LISTEN_PORT UPSTREAM_PORT LOG_FILE MODE

MODE flaky: UploadPart 1's first attempt loses its connection mid-body; part 2's
first attempt gets 500 InternalError; part 3's first two attempts get 503 SlowDown;
the first full GetObject is cut off mid-body after half the bytes.
MODE permanent: every attempt of UploadPart 2 gets 500 InternalError.
MODE none: no faults (logging only). In every mode each UploadPart is held 0.3 s
before it is forwarded, so that parts in flight together do not depend on timing.
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LISTEN, UPSTREAM, LOG, MODE = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
lock = threading.Lock()
attempts = {}  # (kind, n) -> attempts seen
state = {"inflight_parts": 0, "max_inflight_parts": 0, "get_cut": False}

ERR = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code>'
       '<Message>injected by fault_proxy</Message></Error>')


def log(rec):
    with lock, open(LOG, "a") as f:
        f.write(json.dumps(rec) + "\n")


def fault_for(method, q):
    """The fault for this request, or None."""
    if method != "PUT" or "partNumber" not in q:
        return None
    part = int(q["partNumber"][0])
    with lock:
        k = ("part", part)
        attempts[k] = attempts.get(k, 0) + 1
        a = attempts[k]
    if MODE == "flaky":
        if part == 1 and a == 1:
            return "drop"
        if part == 2 and a == 1:
            return "500"
        if part == 3 and a <= 2:
            return "503"
    if MODE == "permanent" and part == 2:
        return "500"
    return None


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def handle_any(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        is_part = self.command == "PUT" and "partNumber" in q
        fault = fault_for(self.command, q)
        rec = {"method": self.command, "path": urllib.parse.unquote(u.path),
               "query": sorted(q), "part": int(q["partNumber"][0]) if is_part else None,
               "range": self.headers.get("Range"), "len": length, "fault": fault,
               "expires": q.get("X-Amz-Expires", [None])[0]}
        if is_part:
            with lock:
                state["inflight_parts"] += 1
                state["max_inflight_parts"] = max(state["max_inflight_parts"],
                                                  state["inflight_parts"])
                rec["inflight"] = state["inflight_parts"]
        try:
            if fault == "drop":
                self.rfile.read(length // 2)  # half the part, then the line goes dead
                log(rec)
                self.close_connection = True
                self.connection.shutdown(2)
                return
            body = self.rfile.read(length) if length else b""
            if fault in ("500", "503"):
                code = "InternalError" if fault == "500" else "SlowDown"
                out = (ERR % code).encode()
                self.send_response(int(fault))
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
                log(rec)
                return
            if is_part:
                # Held a moment, as a distant store would: a local s3rver answers a part
                # faster than the next one is produced, and the test of parts in flight
                # must not depend on that race.
                time.sleep(0.3)
            conn = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=60)
            hdrs = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            conn.request(self.command, self.path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            cut = False
            if (MODE == "flaky" and self.command == "GET" and resp.status == 200
                    and not self.headers.get("Range") and len(data) > 1 << 20):
                with lock:
                    cut = not state["get_cut"]
                    state["get_cut"] = True
            rec["status"] = resp.status
            rec["cut"] = cut
            log(rec)
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            if self.command == "HEAD":
                self.send_header("Content-Length", resp.getheader("Content-Length", "0"))
                self.end_headers()
                return
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if cut:  # the promised length, but only half the bytes, then hang up
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(data)
            conn.close()
        finally:
            if is_part:
                with lock:
                    state["inflight_parts"] -= 1
                    with open(LOG + ".state", "w") as f:
                        json.dump(state, f)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", LISTEN), Proxy).serve_forever()
