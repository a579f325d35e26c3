#!/usr/bin/env python3
"""A stand-in for S3's presigned UploadPart and GetObject, for the node's part upload and
download_url tests. A TEST DOUBLE written from pterodactyl-protocol.md §4.3/§2.2; it
checks no signature and implements no S3 logic beyond what the tests need.

    fake_part_store.py --dir DIR --log FILE [--ctype TYPE] [RULE...]

It prints its port (one line, stdout) once it listens, and exits when stdin reaches EOF.

    PUT /part/<n>?...     stores the body as DIR/part.<n> (a retry replaces it) and
                          answers 200 with ETag: "<md5 hex>" (quotes included)
    GET /object           the parts stored so far, concatenated in part order (or
                          DIR/object when that file exists), with Range: bytes=a- support
                          (206 + Content-Range), Content-Type TYPE (default
                          application/x-gzip)
    GET /status/<code>    that status with a small HTML body

RULEs pick faults by request; attempts count from 1 per part (PUT) or per GET /object:

    put:<n|*>:<attempt|*>:<500|503|429|403|drop>   drop: read half the body, then reset
    get:<attempt|*>:drop:<bytes>                   send <bytes> of the body, then close
                                                   (short of Content-Length)
    get:<attempt|*>:norange                        ignore Range: answer 200, whole object

Every request is logged to FILE as a JSON line: method, path, range, attempt, status.
"""

import argparse
import hashlib
import json
import os
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler

from helper_server import serve


class State:
    def __init__(self, args):
        self.dir = args.dir
        self.log_path = args.log
        self.ctype = args.ctype
        self.rules = [r.split(":") for r in args.rules]
        self.lock = threading.Lock()
        self.put_attempts = {}
        self.get_attempts = 0

    def record(self, entry):
        with self.lock:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")


def match(pattern, value):
    return pattern == "*" or pattern == str(value)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-part-store"

    def log_message(self, fmt, *args):
        pass

    def reset(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def send(self, code, body=b"", headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_PUT(self):
        st = self.server.state
        path = self.path.split("?")[0]
        length = int(self.headers.get("Content-Length") or 0)
        parts = path.strip("/").split("/")
        if len(parts) != 2 or parts[0] != "part" or not parts[1].isdigit():
            self.rfile.read(length)
            return self.send(404)
        n = int(parts[1])
        with st.lock:
            attempt = st.put_attempts.get(n, 0) + 1
            st.put_attempts[n] = attempt
        fault = None
        for r in st.rules:
            if r[0] == "put" and match(r[1], n) and match(r[2], attempt):
                fault = r[3]
                break
        entry = {"method": "PUT", "path": self.path, "part": n, "attempt": attempt,
                 "length": length, "ctype": self.headers.get("Content-Type"), "fault": fault}
        if fault == "drop":
            self.rfile.read(length // 2)
            st.record(entry)
            return self.reset()
        body = self.rfile.read(length)
        if fault:
            entry["status"] = int(fault)
            st.record(entry)
            return self.send(int(fault), b"<Error><Code>InjectedFault</Code></Error>",
                             {"Content-Type": "application/xml"})
        tmp = os.path.join(st.dir, "part.%d.tmp" % n)
        with open(tmp, "wb") as f:
            f.write(body)
        os.replace(tmp, os.path.join(st.dir, "part.%d" % n))
        etag = '"%s"' % hashlib.md5(body).hexdigest()
        entry["status"] = 200
        entry["etag"] = etag
        st.record(entry)
        self.send(200, b"", {"ETag": etag})

    def object_bytes(self):
        st = self.server.state
        obj = os.path.join(st.dir, "object")
        if os.path.exists(obj):
            with open(obj, "rb") as f:
                return f.read()
        names = sorted((int(x.split(".")[1]) for x in os.listdir(st.dir)
                        if x.startswith("part.") and x.split(".")[1].isdigit()
                        and len(x.split(".")) == 2))
        out = b""
        for n in names:
            with open(os.path.join(st.dir, "part.%d" % n), "rb") as f:
                out += f.read()
        return out

    def do_GET(self):
        st = self.server.state
        path = self.path.split("?")[0]
        if path.startswith("/status/"):
            code = int(path.split("/")[2])
            st.record({"method": "GET", "path": self.path, "status": code})
            return self.send(code, b"<html>nope</html>", {"Content-Type": "text/html"})
        if path != "/object":
            return self.send(404)
        with st.lock:
            st.get_attempts += 1
            attempt = st.get_attempts
        data = self.object_bytes()
        rng = self.headers.get("Range")
        fault, arg = None, None
        for r in st.rules:
            if r[0] == "get" and match(r[1], attempt):
                fault = r[2]
                arg = r[3] if len(r) > 3 else None
                break
        start = 0
        code = 200
        headers = {"Content-Type": st.ctype, "ETag": '"%s"' % hashlib.md5(data).hexdigest(),
                   "Accept-Ranges": "bytes"}
        if rng and fault != "norange":
            start = int(rng.split("=")[1].split("-")[0])
            code = 206
            headers["Content-Range"] = "bytes %d-%d/%d" % (start, len(data) - 1, len(data))
        body = data[start:]
        st.record({"method": "GET", "path": self.path, "range": rng, "attempt": attempt,
                   "status": code, "fault": fault})
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault == "drop":
            # FIN, not RST: a reset may discard bytes the client has not read yet, and
            # the test wants to know exactly where the resume must start
            self.wfile.write(body[:int(arg)])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.close_connection = True
            return
        self.wfile.write(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--ctype", default="application/x-gzip")
    ap.add_argument("rules", nargs="*")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    serve(Handler, State(args))


if __name__ == "__main__":
    main()
