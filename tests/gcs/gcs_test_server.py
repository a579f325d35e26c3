#!/usr/bin/python3
"""A strict GCS test server written from ../shared/docs/gcs-protocol.md -- NOT real GCS.

No GCS emulator that implements chunked resumable uploads can be installed here
(fake-gcs-server needs Go or Docker, storage-testbench needs PyPI), so the gcs adapter is
tested against this server. It implements, strictly, the subset of the JSON and XML APIs
that the spec describes; where real GCS behaviour is [unverified] in the spec, the choice
made here is written below. Tests that use it must call it "the strict GCS test server
(not real GCS)".

Usage
-----
    gcs_test_server.py --port N --dir DATA --key-out KEYFILE.json [--bucket B]
                       [--hmac-id ID --hmac-secret S] [--faults JSON | --faults-file F]
                       [--log FILE] [--token-ttl SECS] [--page-size N] [--no-auth]
                       [--key-in SA.json] [--client-email E]
    gcs_test_server.py --self-test          (starts one on a free port and drives it)

It prints exactly one line, `ready <port>`, on stdout once listening (--port 0 picks a
free port), and then nothing. Stop it with SIGTERM/SIGINT.

  --key-out   a service-account JSON key is written there: type, project_id,
              private_key_id, private_key (PKCS#8 PEM, a fresh RSA-2048 key, or the one of
              --key-in), client_email, client_id, token_uri = http://127.0.0.1:<port>/token.
  --bucket    the only bucket (default amber-test); other buckets answer 404.
  --hmac-id/--hmac-secret  an HMAC key for the XML API and GOOG4-HMAC-SHA256 signed URLs.
  --token-ttl lifetime of issued access tokens, seconds (default 3600); expires_in says it.
  --no-auth   JSON/XML requests need no credentials (emulator mode). Signed URLs that carry
              X-Goog-Signature are still verified.
  --page-size objects per list page (default 2, so paging is exercised).
  --log       every request as one JSON line: t, method, path, query, status, range /
              content-range / x-goog-hash headers, auth kind, body bytes, fault, session.

Data dir layout (the e2e reads it):
  DATA/objects/<bucket>/<quote(name, safe='')>        object bytes
  DATA/objects/<bucket>/<quote(name, safe='')>.meta   its JSON resource (the same JSON the
                                                       JSON API returns)
  DATA/sessions/<upload_id>                            bytes persisted by an open session
  DATA/mpu/<uploadId>/<partNumber>                     XML multipart parts

Endpoints
---------
POST /token   OAuth2 JWT-bearer grant (form grant_type=urn:ietf:params:oauth:grant-type:
    jwt-bearer&assertion=JWT). The JWT must be RS256, signed by the key's private half,
    iss = client_email, aud = token_uri exactly, a non-empty scope, iat/exp present,
    exp - iat <= 3600, not expired, iat not more than 60 s in the future. Else 400
    {"error":"invalid_grant",...}. 200 {"access_token","expires_in","token_type":"Bearer"}.
GET /computeMetadata/v1/instance/service-accounts/default/token  (also .../default/email)
    needs `Metadata-Flavor: Google` (403 without it, 403 with X-Forwarded-For); answers with
    `Metadata-Flavor: Google` and the token JSON.
JSON API: `Authorization: Bearer <token from /token or metadata>` (401 JSON error when
    missing, unknown or expired; HMAC credentials are refused there, as in GCS).
  POST /upload/storage/v1/b/B/o?uploadType=resumable[&name=ENC(O)][&ifGenerationMatch=G]
       (name in the query or the JSON body {"name":...,"contentType":...,"metadata":{}})
       -> 200, empty body, Location: http://<Host>/upload/storage/v1/b/B/o?uploadType=
       resumable&name=..&upload_id=U, X-GUploader-UploadID: U.
  POST ...?uploadType=media&name=ENC(O) -> 200 object JSON (single request).
  PUT (or POST) <session URI>  (no credentials needed; it is a capability)
     Content-Range `bytes a-b/*` | `bytes a-b/T` | `bytes */T` | `bytes */*`:
     - body length must equal b-a+1 (400); a non-final chunk must be a multiple of
       256 KiB (400); a > persisted (a gap) -> 400 "invalid" (the spec leaves real GCS's
       answer [unverified]; clients must resync with a status query); a < persisted -> the
       overlap is compared with what is stored (400 if it differs) and skipped;
     - T must be consistent with b (T = b+1) and with any earlier declared total (400);
     - not final -> 308 with `Range: bytes=0-<persisted-1>`, or no Range when nothing is
       persisted; `bytes */*` and `bytes */T` with T != persisted are status queries (308);
     - final -> 200 with the object JSON: kind, id, name, bucket, generation (string),
       metageneration, size (string), md5Hash, crc32c (base64 big-endian CRC32C),
       contentType, metadata, timeCreated, updated, etag. An X-Goog-Hash (one line
       comma-joined or several lines) whose crc32c= or md5= mismatches -> 400 and the
       final chunk is not stored. ifGenerationMatch from the init is checked here (412).
     - a finalised session answers 200 + the object JSON to any later PUT;
     - DELETE <session URI> -> 499; afterwards the session answers 410. An unknown
       upload_id -> 404. A session lost by a fault answers 404 (or 410) from then on.
  GET /storage/v1/b/B/o/ENC(O)?alt=media (also /download/storage/v1/...): the bytes, with
     Range (bytes=S-, S-E, -N) -> 206 + Content-Range; ETag "<etag>" changes per generation,
     If-Match (412 on mismatch) and If-Range (mismatch: the whole object, 200) honoured; S >= size -> 416 with Content-Range
     bytes */size; X-Goog-Generation, X-Goog-Hash: crc32c=..,md5=.. (one comma-joined line),
     X-Goog-Stored-Content-Length, Accept-Ranges. generation=G (404 if not current) and
     ifGenerationMatch=G (412 on mismatch) honoured. The object name in a JSON path must be
     percent-encoded whole: a literal '/' in it -> 404.
  GET /storage/v1/b/B/o/ENC(O) -> the object JSON. DELETE -> 204 (404 when missing;
     ifGenerationMatch honoured, 412).
  GET /storage/v1/b/B/o?prefix=P&pageToken=T[&maxResults=N] -> {"kind":"storage#objects",
     "items":[...], "nextPageToken":...} (--page-size per page).
XML API: /B/<per-segment-encoded object>, authenticated by one of
  - `Authorization: GOOG4-HMAC-SHA256 Credential=ID/YYYYMMDD/REGION/storage/goog4_request,
    SignedHeaders=a;b, Signature=hex` with `x-goog-date` (within 15 min of now) and
    `x-goog-content-sha256` (UNSIGNED-PAYLOAD or the hex SHA-256 of the body, which is
    then checked: 400 XAmzContentSHA256Mismatch-style error). SignedHeaders must include
    host and x-goog-date. The canonical request is §5.1 with the request's query (all of it).
  - `Authorization: Bearer <token>`;
  - a V4 signed URL (below);
  Bad signature -> 403 <Error><Code>SignatureDoesNotMatch</Code>... with <StringToSign>
  and <CanonicalRequest>.
  POST /B/O?uploads -> 200 InitiateMultipartUploadResult (S3 namespace) with UploadId.
  PUT /B/O?partNumber=N&uploadId=U -> 200, ETag "<md5 hex>" (quoted), x-goog-hash
     crc32c=..,md5=..; a request x-goog-hash crc32c/md5 or Content-MD5 that mismatches
     -> 400 BadDigest. N in 1..10000.
  POST /B/O?uploadId=U + <CompleteMultipartUpload> -> 200 CompleteMultipartUploadResult;
     strict: parts listed in strictly ascending order (400 InvalidPartOrder), each uploaded
     with exactly that ETag (quotes optional; 400 InvalidPart), every part but the last
     >= 5 MiB (400 EntityTooSmall), at least one part (400 MalformedXML). The object gets a
     crc32c and NO md5Hash (as GCS's MPU objects). Answers x-goog-hash: crc32c=...
  DELETE /B/O?uploadId=U -> 204 (404 NoSuchUpload afterwards). GET ?uploadId=U lists parts.
  POST /B/O with x-goog-resumable: start -> 201 + Location (session URI as above; the
     final chunk then answers 200 with an empty body and x-goog-hash/x-goog-generation).
  PUT /B/O (simple upload, x-goog-hash checked), GET/HEAD /B/O (Range, as alt=media),
  DELETE /B/O -> 204 / 404 NoSuchKey.
  GET /B?list-type=2[&prefix=P][&continuation-token=T][&max-keys=N] -> ListBucketResult
     (Contents: Key, Generation, LastModified, ETag, Size; IsTruncated,
     NextContinuationToken), --page-size keys per page; without list-type: V1 with
     marker/NextMarker.
Signed URLs (§5): any /B/O request whose query has X-Goog-Algorithm = GOOG4-RSA-SHA256
  (verified with the service-account key's public half) or GOOG4-HMAC-SHA256 (the
  --hmac-secret; key derived from "GOOG4"+secret, date, region, "storage",
  "goog4_request"). X-Goog-Credential = <client_email|hmac id>/<date>/<region>/storage/
  goog4_request with date == X-Goog-Date[:8]; X-Goog-SignedHeaders must include host (the
  request's Host header, port included); every signed header must be sent. Canonical
  query: every parameter but X-Goog-Signature, RFC 3986-encoded, sorted. Payload
  UNSIGNED-PAYLOAD (or x-goog-content-sha256 when signed). X-Goog-Expires outside
  1..604800 -> 400 AuthorizationQueryParametersError; used after X-Goog-Date + Expires ->
  400 ExpiredToken (what GCS answers); before X-Goog-Date - 15 min -> 403
  RequestNotYetValid; wrong signature -> 403 SignatureDoesNotMatch. POST is only allowed
  with x-goog-resumable: start (signed).

Faults
------
--faults '[{"op":"chunk","n":2,"action":"drop"}, ...]' (or --faults-file F with that JSON;
or at runtime: POST /__control/faults with that JSON replaces the schedule and resets the
counters; GET /__control/faults shows schedule and counters). Each entry:
  op     chunk | get | part | init | token | delete | complete | metadata
  n      which unit, 1-based, counted separately per session (chunk), per object name
         (get: GETs of the bytes, JSON alt=media or XML/signed GET, not HEAD; delete, init), per uploadId (part: n is the partNumber; complete), or
         globally (token, metadata)
  action see below
  times  how many attempts of that unit it hits (default 1: only the first attempt)
  keep   bytes to persist (partial, drop), default 0; use a multiple of 256 KiB
  match  optional substring the object name must contain
Units: a chunk is a data-carrying PUT to a session at a start offset not seen before in
that session (a resend at the same offset is another attempt of the same chunk; after a
partial chunk the resend starts at a new offset and so is the next chunk); a get, delete,
init, token or complete unit is one request; a part unit is one partNumber.
Actions:
  drop      (chunk, part) read half the body, persist `keep` bytes, close the connection
            with no response
  drop_mid  (get) send the headers and half the body, then close the connection
  partial   (chunk) read the whole body, persist only `keep` bytes of it, answer 308 with
            the smaller Range (also for a final chunk: the object is not finalised)
  lost      (chunk) the session is gone: 404 now and for every later request
  gone      (chunk) the same with 410
  "500" | "503" | "429" | "408"  read the body, store nothing, answer that status
  delay     sleep `secs` (default 2) and then serve normally
Every applied fault is in the --log line ("fault").
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.etree import ElementTree

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import jwt  # PyJWT (python3-jwt)

K256 = 256 * 1024
MIN_PART = 5 << 20
S3NS = "http://s3.amazonaws.com/doc/2006-03-01/"

# ---------------------------------------------------------------- CRC32C (Castagnoli)
_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data, crc=0):
    """CRC32C of data, continuing from crc (the finished value of the preceding bytes)."""
    c = crc ^ 0xFFFFFFFF
    t = _CRC_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def crc_b64(c):
    return base64.b64encode(c.to_bytes(4, "big")).decode()


def md5_b64(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


assert crc32c(b"123456789") == 0xE3069283
assert crc_b64(crc32c(b"123456789")) == "4waSgw=="
assert crc32c(b"") == 0 and crc32c(b"The quick brown fox jumps over the lazy dog") == 0x22620404
assert crc32c(b"6789", crc32c(b"12345")) == 0xE3069283


def rfc3986(s):
    return urllib.parse.quote(s, safe="-._~")


def now_rfc3339():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_query(raw):
    """Raw query -> list of (name, value), percent-decoded, '+' kept literal."""
    out = []
    if not raw:
        return out
    for item in raw.split("&"):
        if item == "":
            continue
        k, _, v = item.partition("=")
        out.append((urllib.parse.unquote(k), urllib.parse.unquote(v)))
    return out


def parse_x_goog_hash(values):
    """All X-Goog-Hash header lines -> {'crc32c': b64, 'md5': b64}."""
    out = {}
    for v in values:
        for item in v.split(","):
            k, _, val = item.strip().partition("=")
            if k:
                out[k.strip().lower()] = val.strip()
    return out


class Stop(Exception):
    """Raised after a response (or a dropped connection) ends the handling."""


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.RLock()
        self.bucket = args.bucket
        self.dir = args.dir
        self.tokens = {}  # token -> expiry (unix)
        self.sessions = {}  # id -> dict
        self.mpus = {}  # uploadId -> dict
        self.faults = []
        self.counters = {}  # (op, scope) -> {"units": {unitkey: (index, attempts)}, "next": n}
        self.generation = int(time.time() * 1e6)
        self.logf = open(args.log, "a") if args.log else None
        for d in ("objects/" + self.bucket, "sessions", "mpu"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)

    def next_generation(self):
        with self.lock:
            self.generation += 1
            return self.generation

    def log(self, rec):
        if self.logf:
            with self.lock:
                self.logf.write(json.dumps(rec) + "\n")
                self.logf.flush()

    # ------------------------------------------------------------ faults
    def set_faults(self, faults):
        if not isinstance(faults, list) or not all(isinstance(f, dict) and "op" in f and
                                                   "action" in f for f in faults):
            raise ValueError("faults must be a JSON list of {op, n, action, ...}")
        with self.lock:
            self.faults = faults
            self.counters = {}

    def fault(self, op, scope, unit=None, name=""):
        """Counts this attempt and returns the fault entry that applies, or None. unit is
        the key of the unit (a chunk's start offset, a partNumber); None: each call is a
        new unit."""
        with self.lock:
            c = self.counters.setdefault((op, scope), {"units": {}, "next": 1})
            if unit is None:
                unit = ("req", c["next"])
            if unit not in c["units"]:
                if op == "part":
                    c["units"][unit] = [int(unit), 0]
                else:
                    c["units"][unit] = [c["next"], 0]
                    c["next"] += 1
            u = c["units"][unit]
            u[1] += 1
            index, attempt = u
            for f in self.faults:
                if f["op"] != op or int(f.get("n", 1)) != index:
                    continue
                if f.get("match") and f["match"] not in name:
                    continue
                if attempt <= int(f.get("times", 1)):
                    return f
            return None

    # ------------------------------------------------------------ objects
    def obj_path(self, name):
        return os.path.join(self.dir, "objects", self.bucket, urllib.parse.quote(name, safe=""))

    def get_meta(self, name):
        try:
            with open(self.obj_path(name) + ".meta") as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def put_object(self, name, src_path, crc, md5, content_type, metadata, precond=None,
                   md5_ok=True):
        """Moves src_path in as the object. precond: ifGenerationMatch value or None.
        Returns (meta, None) or (None, (status, reason, message))."""
        with self.lock:
            old = self.get_meta(name)
            if precond is not None:
                g = int(precond)
                if (g == 0 and old is not None) or (g != 0 and (old is None or
                                                               int(old["generation"]) != g)):
                    return None, (412, "conditionNotMet",
                                  "At least one of the pre-conditions you specified did not hold.")
            gen = self.next_generation()
            size = os.path.getsize(src_path)
            ts = now_rfc3339()
            meta = {"kind": "storage#object", "id": f"{self.bucket}/{name}/{gen}",
                    "selfLink": "", "name": name, "bucket": self.bucket,
                    "generation": str(gen), "metageneration": "1",
                    "contentType": content_type or "application/octet-stream",
                    "size": str(size), "crc32c": crc_b64(crc),
                    "etag": base64.b64encode(str(gen).encode()).decode(),
                    "timeCreated": ts, "updated": ts, "storageClass": "STANDARD"}
            if md5_ok:
                meta["md5Hash"] = md5
            if metadata:
                meta["metadata"] = metadata
            p = self.obj_path(name)
            os.replace(src_path, p)
            with open(p + ".meta.tmp", "w") as f:
                json.dump(meta, f)
            os.replace(p + ".meta.tmp", p + ".meta")
            return meta, None

    def delete_object(self, name):
        with self.lock:
            p = self.obj_path(name)
            if not os.path.exists(p + ".meta"):
                return False
            os.remove(p + ".meta")
            os.remove(p)
            return True

    def list_objects(self, prefix):
        d = os.path.join(self.dir, "objects", self.bucket)
        names = sorted(urllib.parse.unquote(f[:-5]) for f in os.listdir(d) if f.endswith(".meta"))
        return [n for n in names if n.startswith(prefix)]

    # ------------------------------------------------------------ tokens
    def issue_token(self):
        tok = "ya29.test-" + secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[tok] = time.time() + self.args.token_ttl
        return {"access_token": tok, "expires_in": self.args.token_ttl, "token_type": "Bearer"}

    def token_ok(self, tok):
        with self.lock:
            exp = self.tokens.get(tok)
        return exp is not None and time.time() < exp


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "amber-strict-gcs-test-server"
    S = None  # State

    def log_message(self, *a):
        pass

    # ------------------------------------------------------------ plumbing
    def setup_request(self):
        u = urllib.parse.urlsplit(self.path)
        self.rawpath, self.rawquery = u.path, u.query
        self.q = parse_query(u.query)
        self.qd = dict(self.q)
        self._body = None
        self.rec = {"t": round(time.time(), 3), "method": self.command, "path": self.rawpath,
                    "query": self.rawquery, "content_range": self.headers.get("Content-Range"),
                    "range": self.headers.get("Range"),
                    "x_goog_hash": self.headers.get_all("X-Goog-Hash"),
                    "auth": (self.headers.get("Authorization") or "").split(" ")[0] or None,
                    "content_length": self.headers.get("Content-Length"),
                    "if_generation_match": self.headers.get("x-goog-if-generation-match"),
                    "if_match": self.headers.get("If-Match"),
                    "if_range": self.headers.get("If-Range")}

    def body_len(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            return None
        return int(self.headers.get("Content-Length") or 0)

    def body(self):
        if self._body is None:
            n = self.body_len()
            if n is None:
                parts = []
                while True:
                    line = self.rfile.readline()
                    size = int(line.split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
                self._body = b"".join(parts)
                self.rec["chunked_request"] = True
            else:
                self._body = self.rfile.read(n) if n else b""
        return self._body

    def send(self, status, body=b"", ctype=None, headers=None):
        if isinstance(body, str):
            body = body.encode()
        if self._body is None:
            try:
                self.body()  # drain so the connection stays usable
            except Exception:  # noqa: BLE001
                self.close_connection = True
        self.send_response(status, {308: "Resume Incomplete", 499: "Client Closed Request"}
                           .get(status))
        for k, v in (headers or {}).items():
            if isinstance(v, list):
                for x in v:
                    self.send_header(k, x)
            else:
                self.send_header(k, v)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.rec["status"] = status
        raise Stop()

    def json(self, status, obj, headers=None):
        self.send(status, json.dumps(obj), "application/json; charset=UTF-8", headers)

    def jerr(self, status, reason, message):
        self.json(status, {"error": {"code": status, "message": message, "errors": [
            {"domain": "global", "reason": reason, "message": message}]}})

    def xerr(self, status, code, message, extra=""):
        self.send(status, "<?xml version='1.0' encoding='UTF-8'?><Error><Code>%s</Code>"
                  "<Message>%s</Message>%s</Error>" % (code, xml_escape(message), extra),
                  "application/xml; charset=UTF-8")

    def drop(self, read=None):
        """Closes the connection with no response, after reading `read` body bytes."""
        try:
            if read:
                self.rfile.read(read)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close_connection = True
        self.rec["status"] = "dropped"
        raise Stop()

    def handle_one(self):
        self.setup_request()
        try:
            self.route()
            self.jerr(404, "notFound", "No such endpoint: %s %s" % (self.command, self.rawpath))
        except Stop:
            pass
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            self.rec["status"] = "client-gone"
        except Exception as e:  # noqa: BLE001 - a server bug must show, not hang the client
            traceback.print_exc(file=sys.stderr)
            self.rec["status"] = 500
            self.rec["exception"] = repr(e)
            try:
                self.send_response(500)
                b = json.dumps({"error": {"code": 500, "message": "test server bug: " + repr(e)}})
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                self.wfile.write(b.encode())
            except OSError:
                pass
            self.close_connection = True
        self.rec["t_end"] = round(time.time(), 3)  # with "t": which requests overlapped
        self.S.log(self.rec)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = handle_one

    # ------------------------------------------------------------ routing
    def route(self):
        S, p, m = self.S, self.rawpath, self.command
        if p == "/token" and m == "POST":
            self.token_endpoint()
        if p.startswith("/computeMetadata/v1/"):
            self.metadata_endpoint()
        if p == "/__control/faults":
            if m == "POST":
                try:
                    S.set_faults(json.loads(self.body() or b"[]"))
                except ValueError as e:
                    self.jerr(400, "invalid", str(e))
                self.json(200, {"faults": S.faults})
            with S.lock:
                self.json(200, {"faults": S.faults, "counters": {
                    f"{k[0]}:{k[1]}": v["units"].__repr__() for k, v in S.counters.items()}})
        mo = re.fullmatch(r"/upload/storage/v1/b/([^/]+)/o", p)
        if mo:
            self.need_bucket(mo.group(1))
            if "upload_id" in self.qd:
                self.session_request(self.qd["upload_id"])
            if m == "POST":
                self.json_auth()
                self.json_upload_init()
        mo = re.fullmatch(r"/storage/v1/b/([^/]+)/o", p)
        if mo and m == "GET":
            self.need_bucket(mo.group(1))
            self.json_auth()
            self.json_list()
        mo = re.fullmatch(r"/(?:download/)?storage/v1/b/([^/]+)/o/(.+)", p)
        if mo:
            self.need_bucket(mo.group(1), json_api=True)
            if "/" in mo.group(2):
                self.jerr(404, "notFound", "No such object (the JSON API path needs the whole "
                          "object name percent-encoded, '/' as %2F)")
            name = urllib.parse.unquote(mo.group(2))
            self.json_auth()
            self.json_object(name)
        mo = re.fullmatch(r"/([^/]+)/?", p)
        if mo and mo.group(1) not in ("storage", "upload", "download", "token"):
            self.need_bucket(mo.group(1), json_api=False)
            self.xml_list()
        mo = re.fullmatch(r"/([^/]+)/(.+)", p)
        if mo and not p.startswith("/storage/") and not p.startswith("/upload/"):
            self.need_bucket(mo.group(1), json_api=False)
            name = "/".join(urllib.parse.unquote(s) for s in mo.group(2).split("/"))
            self.xml_request(name)

    def need_bucket(self, b, json_api=True):
        if b != self.S.bucket:
            if json_api:
                self.jerr(404, "notFound", "The specified bucket does not exist.")
            self.xerr(404, "NoSuchBucket", "The specified bucket does not exist.")

    # ------------------------------------------------------------ auth endpoints
    def token_endpoint(self):
        S = self.S
        f = S.fault("token", "global")
        if f:
            self.apply_simple_fault(f, json_api=True)
        form = dict(urllib.parse.parse_qsl(self.body().decode("latin-1")))
        self.rec["grant_type"] = form.get("grant_type")
        if self.headers.get("Content-Type", "").split(";")[0].strip() != \
                "application/x-www-form-urlencoded":
            self.json(400, {"error": "invalid_request",
                            "error_description": "Content-Type must be "
                                                 "application/x-www-form-urlencoded"})
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            self.json(400, {"error": "unsupported_grant_type",
                            "error_description": "Invalid grant_type: %s" % form.get("grant_type")})
        a = form.get("assertion", "")
        why = verify_jwt(a, S)
        if why:
            self.rec["jwt_error"] = why
            self.json(400, {"error": "invalid_grant", "error_description": why})
        self.json(200, S.issue_token())

    def metadata_endpoint(self):
        S = self.S
        if self.headers.get("Metadata-Flavor") != "Google" or self.headers.get("X-Forwarded-For"):
            self.send(403, "Missing Metadata-Flavor:Google header (or X-Forwarded-For present)",
                      "text/html")
        f = S.fault("metadata", "global")
        if f:
            self.apply_simple_fault(f, json_api=True)
        base = "/computeMetadata/v1/instance/service-accounts/default/"
        if self.rawpath == base + "token":
            self.json(200, S.issue_token(), {"Metadata-Flavor": "Google"})
        if self.rawpath == base + "email":
            self.send(200, S.client_email, "application/text", {"Metadata-Flavor": "Google"})
        self.send(404, "Not found", "text/html", {"Metadata-Flavor": "Google"})

    def bearer(self):
        a = self.headers.get("Authorization") or ""
        if a.startswith("Bearer "):
            return a[7:].strip()
        return None

    def json_auth(self):
        if self.S.args.no_auth:
            return
        tok = self.bearer()
        if tok is None:
            self.jerr(401, "required", "Anonymous caller does not have storage access (no "
                      "Authorization: Bearer; HMAC keys work only on the XML API)")
        if not self.S.token_ok(tok):
            self.jerr(401, "authError", "Invalid Credentials (unknown or expired access token)")

    def apply_simple_fault(self, f, json_api=True):
        self.rec["fault"] = f
        a = str(f["action"])
        if a == "delay":
            time.sleep(float(f.get("secs", 2)))
            return
        if a == "drop":
            self.drop()
        if a in ("500", "502", "503", "504", "429", "408"):
            st = int(a)
            if json_api:
                self.jerr(st, {429: "rateLimitExceeded", 500: "internalError"}.get(st, "backendError"),
                          "injected by the test server's fault schedule")
            self.xerr(st, "InternalError" if st == 500 else "ServiceUnavailable",
                      "injected by the test server's fault schedule")

    # ------------------------------------------------------------ JSON uploads
    def json_upload_init(self):
        S = self.S
        ut = self.qd.get("uploadType")
        body = self.body()
        meta = {}
        if body and ut == "resumable":
            try:
                meta = json.loads(body)
            except ValueError:
                self.jerr(400, "invalid", "The init body is not JSON")
        name = self.qd.get("name") or meta.get("name")
        if not name:
            self.jerr(400, "required", "Required parameter: name")
        if "name" in self.qd and "name" in meta and meta["name"] != self.qd["name"]:
            self.jerr(400, "invalid", "name in the query and in the body differ")
        f = S.fault("init", name, name=name)
        if f:
            self.apply_simple_fault(f)
        if ut == "media":
            tmp = os.path.join(S.dir, "sessions", "media-" + secrets.token_hex(8))
            with open(tmp, "wb") as fo:
                fo.write(body)
            m, e = S.put_object(name, tmp, crc32c(body), md5_b64(body),
                                self.headers.get("Content-Type"), None,
                                self.qd.get("ifGenerationMatch"))
            if e:
                os.remove(tmp)
                self.jerr(*e)
            self.json(200, m)
        if ut != "resumable":
            self.jerr(400, "invalid", "uploadType must be resumable or media here")
        ctype = meta.get("contentType") or self.headers.get("X-Upload-Content-Type")
        self.new_session(name, ctype, meta.get("metadata"), self.qd.get("ifGenerationMatch"),
                         xml=False, status=200)

    def new_session(self, name, ctype, metadata, precond, xml, status):
        S = self.S
        sid = "ADPycd" + secrets.token_urlsafe(24).replace("-", "x").replace("_", "y")
        path = os.path.join(S.dir, "sessions", sid)
        open(path, "wb").close()
        declared = self.headers.get("X-Upload-Content-Length")
        with S.lock:
            S.sessions[sid] = {"name": name, "ctype": ctype, "metadata": metadata,
                               "precond": precond, "xml": xml, "path": path, "persisted": 0,
                               "crc": 0, "md5": hashlib.md5(), "total": None, "state": "open",
                               "object": None, "lock": threading.Lock(),
                               "declared": int(declared) if declared else None,
                               "created": time.time()}
        host = self.headers.get("Host") or "127.0.0.1:%d" % self.server.server_address[1]
        loc = ("http://%s/upload/storage/v1/b/%s/o?uploadType=resumable&name=%s&upload_id=%s"
               % (host, S.bucket, urllib.parse.quote(name, safe=""), sid))
        self.rec["session"] = sid
        self.send(status, b"", None, {"Location": loc, "X-GUploader-UploadID": sid})

    def session_request(self, sid):
        S = self.S
        self.rec["session"] = sid
        with S.lock:
            s = S.sessions.get(sid)
        if s is None:
            self.jerr(404, "notFound", "No such upload session")
        if self.command == "DELETE":
            with s["lock"]:
                if s["state"] == "open":
                    s["state"] = "cancelled"
                    try:
                        os.remove(s["path"])
                    except FileNotFoundError:
                        pass
                    self.send(499, b"", None)
            self.gone(s)
        if self.command not in ("PUT", "POST"):
            self.jerr(405, "invalid", "Use PUT on a session URI")
        with s["lock"]:
            self.session_put(sid, s)

    def gone(self, s):
        st = s["state"]
        if st == "cancelled" or st == "gone":
            self.jerr(410, "gone", "The upload session was cancelled or has expired")
        if st == "lost":
            self.jerr(404, "notFound", "No such upload session")
        if st == "final":
            self.final_response(s)
        self.jerr(400, "invalid", "session state " + st)

    def final_response(self, s):
        m = s["object"]
        if s["xml"]:
            h = "crc32c=" + m["crc32c"] + ("," + "md5=" + m["md5Hash"] if "md5Hash" in m else "")
            self.send(200, b"", None, {"x-goog-hash": h, "x-goog-generation": m["generation"],
                                       "ETag": '"%s"' % m["etag"]})
        self.json(200, m)

    def resume_incomplete(self, s):
        h = {}
        if s["persisted"] > 0:
            h["Range"] = "bytes=0-%d" % (s["persisted"] - 1)
        self.send(308, b"", None, h)

    def session_put(self, sid, s):
        S = self.S
        if s["state"] != "open":
            self.gone(s)
        cr = self.headers.get("Content-Range")
        if cr is None:
            self.jerr(400, "invalid", "Content-Range is required on a session PUT (strict test server)")
        mo = re.fullmatch(r"bytes (\*|(\d+)-(\d+))/(\*|\d+)", cr.strip())
        if not mo:
            self.jerr(400, "invalid", "Malformed Content-Range: " + cr)
        total = None if mo.group(4) == "*" else int(mo.group(4))
        if total is not None:
            if s["total"] is not None and s["total"] != total:
                self.jerr(400, "invalid", "The total changed from %d to %d" % (s["total"], total))
            if s["declared"] is not None and s["declared"] != total:
                self.jerr(400, "invalid", "X-Upload-Content-Length was %d, total says %d"
                          % (s["declared"], total))
        n = self.body_len()
        if mo.group(1) == "*":
            # a status query or a finalising empty PUT
            if self.body():
                self.jerr(400, "invalid", "Content-Range bytes */N must come with no body")
            if total is not None and total == s["persisted"]:
                s["total"] = total
                self.finalise(sid, s)
            if total is not None and total < s["persisted"]:
                self.jerr(400, "invalid", "Total %d is less than the %d bytes already persisted"
                          % (total, s["persisted"]))
            self.resume_incomplete(s)
        a, b = int(mo.group(2)), int(mo.group(3))
        if b < a:
            self.jerr(400, "invalid", "Content-Range end before start: " + cr)
        length = b - a + 1
        if n is not None and n != length:
            self.jerr(400, "invalid", "Content-Range says %d bytes, Content-Length %d" % (length, n))
        if total is not None and b + 1 != total:
            self.jerr(400, "invalid", "A final chunk must end at total-1: " + cr)
        if total is None and length % K256:
            self.jerr(400, "invalid", "A non-final chunk must be a multiple of 256 KiB "
                      "(262144 bytes); got %d" % length)
        if total is not None and total < s["persisted"]:
            self.jerr(400, "invalid", "Total %d is less than the %d bytes already persisted"
                      % (total, s["persisted"]))
        if a > s["persisted"]:
            self.jerr(400, "invalid", "Chunk starts at %d but only %d bytes are persisted "
                      "(query the status with bytes */*)" % (a, s["persisted"]))
        f = S.fault("chunk", sid, unit=a, name=s["name"])
        if f:
            self.rec["fault"] = f
            act = str(f["action"])
            if act == "delay":
                time.sleep(float(f.get("secs", 2)))
            elif act == "drop":
                keep = int(f.get("keep", 0))
                data = self.rfile.read(max(length // 2, keep))
                self.append(s, data, a, keep)
                self.drop()
            elif act in ("lost", "gone"):
                s["state"] = act
                self.gone(s)
            elif act in ("500", "502", "503", "504", "429", "408"):
                self.apply_simple_fault(f)
            elif act == "partial":
                data = self.body()
                keep = int(f.get("keep", 0))
                self.append(s, data, a, keep)
                self.resume_incomplete(s)
        data = self.body()
        if len(data) != length:
            self.jerr(400, "invalid", "Body has %d bytes, Content-Range says %d" % (len(data), length))
        if total is not None:
            # the final chunk: check the hash before storing anything of it
            old = s["persisted"]
            skip = old - a
            with open(s["path"], "rb") as fi:
                fi.seek(a)
                if fi.read(skip) != data[:skip]:
                    self.jerr(400, "invalid", "Resent bytes differ from the persisted ones")
            crc = crc32c(data[skip:], s["crc"])
            md5 = s["md5"].copy()
            md5.update(data[skip:])
            want = parse_x_goog_hash(self.headers.get_all("X-Goog-Hash") or [])
            self.rec["want_hash"] = want
            if "crc32c" in want and want["crc32c"] != crc_b64(crc):
                self.jerr(400, "invalid", "Provided CRC32C %s doesn't match calculated CRC32C %s"
                          % (want["crc32c"], crc_b64(crc)))
            if "md5" in want and want["md5"] != base64.b64encode(md5.digest()).decode():
                self.jerr(400, "invalid", "Provided MD5 hash doesn't match calculated MD5 hash")
            self.append(s, data, a, None)
            s["total"] = total
            self.finalise(sid, s)
        self.append(s, data, a, None)
        self.resume_incomplete(s)

    def append(self, s, data, a, keep):
        """Persists data (which starts at offset a) after skipping what is already there;
        keep: persist only the first `keep` bytes of data (None: all)."""
        if keep is not None:
            data = data[:keep]
        skip = s["persisted"] - a
        if skip >= len(data):
            return
        with open(s["path"], "r+b") as fo:
            fo.seek(a)
            old = fo.read(skip)
            if old != data[:skip]:
                self.jerr(400, "invalid", "Resent bytes differ from the persisted ones")
            fo.seek(s["persisted"])
            new = data[skip:]
            fo.write(new)
        s["crc"] = crc32c(new, s["crc"])
        s["md5"].update(new)
        s["persisted"] += len(new)

    def finalise(self, sid, s):
        S = self.S
        m, e = S.put_object(s["name"], s["path"], s["crc"],
                            base64.b64encode(s["md5"].digest()).decode(), s["ctype"],
                            s["metadata"], s["precond"])
        if e:
            s["state"] = "gone"
            self.jerr(*e)
        s["state"] = "final"
        s["object"] = m
        self.final_response(s)

    # ------------------------------------------------------------ JSON objects
    def json_list(self):
        S = self.S
        prefix = self.qd.get("prefix", "")
        size = int(self.qd.get("maxResults") or S.args.page_size)
        names = S.list_objects(prefix)
        start = 0
        tok = self.qd.get("pageToken")
        if tok:
            try:
                start = int(base64.urlsafe_b64decode(tok.encode()).decode())
            except Exception:  # noqa: BLE001
                self.jerr(400, "invalid", "Invalid pageToken")
        page = names[start:start + size]
        out = {"kind": "storage#objects",
               "items": [m for m in (S.get_meta(n) for n in page) if m]}
        if start + size < len(names):
            out["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        self.json(200, out)

    def json_object(self, name):
        S = self.S
        self.rec["object"] = name
        if self.command == "DELETE":
            f = S.fault("delete", name, name=name)
            if f:
                self.apply_simple_fault(f)
            m = S.get_meta(name)
            if m is None:
                self.jerr(404, "notFound", "No such object: %s/%s" % (S.bucket, name))
            if not self.precond_ok(m):
                self.jerr(412, "conditionNotMet", "At least one of the pre-conditions you "
                          "specified did not hold.")
            S.delete_object(name)
            self.send(204)
        if self.command != "GET":
            self.jerr(405, "invalid", "Method not allowed here")
        m = S.get_meta(name)
        if m is None:
            self.jerr(404, "notFound", "No such object: %s/%s" % (S.bucket, name))
        if "generation" in self.qd and self.qd["generation"] != m["generation"]:
            self.jerr(404, "notFound", "No such object: %s/%s#%s"
                      % (S.bucket, name, self.qd["generation"]))
        if not self.precond_ok(m):
            self.jerr(412, "conditionNotMet", "At least one of the pre-conditions you "
                      "specified did not hold.")
        if self.qd.get("alt") != "media":
            self.json(200, m)
        self.serve_media(name, m, json_api=True)

    def precond_ok(self, m):
        g = self.qd.get("ifGenerationMatch") or self.headers.get("x-goog-if-generation-match")
        return g is None or g == m["generation"]

    def serve_media(self, name, m, json_api):
        S = self.S
        size = int(m["size"])
        rng = self.headers.get("Range")
        start, end, status = 0, size - 1, 200
        etag = '"%s"' % m["etag"]
        im = self.headers.get("If-Match")
        if im and im.strip() != "*" and etag not in [t.strip() for t in im.split(",")]:
            if json_api:
                self.jerr(412, "conditionNotMet", "If-Match does not match the object's ETag")
            self.xerr(412, "PreconditionFailed", "If-Match does not match the object's ETag")
        ir = self.headers.get("If-Range")
        if rng and ir and ir.strip() != etag:
            rng = None  # RFC 9110: a failed If-Range means the whole representation
        if rng:
            mo = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if not mo or (mo.group(1) == "" and mo.group(2) == ""):
                self.send(416, "", None, {"Content-Range": "bytes */%d" % size})
            if mo.group(1) == "":
                start = max(0, size - int(mo.group(2)))
            else:
                start = int(mo.group(1))
                if mo.group(2) != "":
                    end = min(size - 1, int(mo.group(2)))
            if start >= size or end < start:
                if json_api:
                    self.send(416, "<?xml version='1.0' encoding='UTF-8'?><Error><Code>"
                              "InvalidRange</Code><Message>The requested range cannot be "
                              "satisfied.</Message></Error>", "application/xml",
                              {"Content-Range": "bytes */%d" % size})
                self.xerr(416, "InvalidRange", "The requested range cannot be satisfied.")
            status = 206
        f = S.fault("get", name, name=name) if self.command == "GET" else None
        h = {"X-Goog-Generation": m["generation"], "X-Goog-Metageneration": "1",
             "X-Goog-Stored-Content-Length": m["size"], "X-Goog-Stored-Content-Encoding": "identity",
             "Accept-Ranges": "bytes", "ETag": '"%s"' % m["etag"],
             "X-Goog-Hash": "crc32c=" + m["crc32c"] + (",md5=" + m["md5Hash"] if "md5Hash" in m
                                                       else "")}
        if status == 206:
            h["Content-Range"] = "bytes %d-%d/%d" % (start, end, size)
        with open(S.obj_path(name), "rb") as fi:
            fi.seek(start)
            data = fi.read(end - start + 1)
        if f:
            self.rec["fault"] = f
            if f["action"] == "drop_mid":
                self.send_response(status)
                for k, v in h.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", m["contentType"])
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:len(data) // 2])
                self.rec["sent"] = len(data) // 2
                self.drop()
            self.apply_simple_fault(f, json_api)
        self.rec["sent"] = len(data)
        self.send(status, data, m["contentType"], h)

    # ------------------------------------------------------------ XML API
    def xml_list(self):
        """GET /B?list-type=2 (ListObjectsV2: prefix, continuation-token, max-keys) or V1
        (prefix, marker): ListBucketResult, --page-size keys per page."""
        S = self.S
        self.xml_auth()
        if self.command != "GET":
            self.xerr(405, "MethodNotAllowed", "Only GET on a bucket here")
        qd = self.qd
        prefix = qd.get("prefix", "")
        size = min(int(qd.get("max-keys") or S.args.page_size), S.args.page_size)
        names = S.list_objects(prefix)
        v2 = qd.get("list-type") == "2"
        start = 0
        if v2 and qd.get("continuation-token"):
            try:
                start = int(base64.urlsafe_b64decode(qd["continuation-token"].encode()).decode())
            except Exception:  # noqa: BLE001
                self.xerr(400, "InvalidArgument", "Invalid continuation-token")
        elif not v2 and qd.get("marker"):
            start = len([n for n in names if n <= qd["marker"]])
        page = names[start:start + size]
        more = start + size < len(names)
        items = []
        for n in page:
            m = S.get_meta(n)
            if m:
                items.append("<Contents><Key>%s</Key><Generation>%s</Generation><LastModified>%s"
                             "</LastModified><ETag>\"%s\"</ETag><Size>%s</Size></Contents>"
                             % (xml_escape(n), m["generation"], m["updated"], m["etag"],
                                m["size"]))
        extra = ""
        if more and v2:
            extra = "<NextContinuationToken>%s</NextContinuationToken>" % \
                base64.urlsafe_b64encode(str(start + size).encode()).decode()
        elif more:
            extra = "<NextMarker>%s</NextMarker>" % xml_escape(page[-1])
        self.send(200, "<?xml version='1.0' encoding='UTF-8'?><ListBucketResult xmlns='%s'>"
                  "<Name>%s</Name><Prefix>%s</Prefix>%s<MaxKeys>%d</MaxKeys><IsTruncated>%s"
                  "</IsTruncated>%s%s</ListBucketResult>"
                  % (S3NS, S.bucket, xml_escape(prefix),
                     "<KeyCount>%d</KeyCount>" % len(items) if v2 else "", size,
                     "true" if more else "false", "".join(items), extra), "application/xml")

    def xml_auth(self):
        S = self.S
        if any(k.lower() == "x-goog-algorithm" for k, _ in self.q):
            self.verify_signed_url()
        elif not S.args.no_auth:
            a = self.headers.get("Authorization") or ""
            if a.startswith("Bearer "):
                if not S.token_ok(a[7:].strip()):
                    self.xerr(401, "AuthenticationRequired", "Invalid or expired access token")
            elif a.startswith("GOOG4-HMAC-SHA256 "):
                self.verify_header_hmac(a)
            else:
                self.xerr(401 if not a else 400, "AuthenticationRequired" if not a else
                          "InvalidArgument", "Authentication required (Bearer, GOOG4-HMAC-SHA256 "
                          "or a V4 signed URL)")

    def xml_request(self, name):
        S = self.S
        self.rec["object"] = name
        self.xml_auth()
        qd = self.qd
        m = self.command
        if m == "POST" and "uploads" in qd:
            self.mpu_init(name)
        if "uploadId" in qd:
            self.mpu_op(name, qd["uploadId"])
        if m == "POST":
            if (self.headers.get("x-goog-resumable") or "").strip() != "start":
                self.xerr(400, "InvalidArgument", "POST needs x-goog-resumable: start here")
            f = S.fault("init", name, name=name)
            if f:
                self.apply_simple_fault(f, json_api=False)
            meta = {k[len("x-goog-meta-"):]: v for k, v in self.headers.items()
                    if k.lower().startswith("x-goog-meta-")}
            self.new_session(name, self.headers.get("Content-Type"), meta or None,
                             self.headers.get("x-goog-if-generation-match"), xml=True, status=201)
        if m == "PUT":
            data = self.body()
            if not self.hash_ok(data):
                self.xerr(400, "BadDigest", "The x-goog-hash / Content-MD5 you specified did not "
                          "match what we received.")
            tmp = os.path.join(S.dir, "sessions", "put-" + secrets.token_hex(8))
            with open(tmp, "wb") as fo:
                fo.write(data)
            mm, e = S.put_object(name, tmp, crc32c(data), md5_b64(data),
                                 self.headers.get("Content-Type"), None,
                                 self.headers.get("x-goog-if-generation-match"))
            if e:
                os.remove(tmp)
                self.xerr(412, "PreconditionFailed", e[2])
            self.send(200, b"", None, {"ETag": '"%s"' % hashlib.md5(data).hexdigest(),
                                       "x-goog-generation": mm["generation"],
                                       "x-goog-hash": "crc32c=%s,md5=%s" % (mm["crc32c"],
                                                                            mm["md5Hash"])})
        if m in ("GET", "HEAD"):
            mm = S.get_meta(name)
            if mm is None:
                self.xerr(404, "NoSuchKey", "The specified key does not exist.")
            if not self.precond_ok(mm):
                self.xerr(412, "PreconditionFailed", "At least one of the pre-conditions you "
                          "specified did not hold.")
            self.serve_media(name, mm, json_api=False)
        if m == "DELETE":
            f = S.fault("delete", name, name=name)
            if f:
                self.apply_simple_fault(f, json_api=False)
            if not S.delete_object(name):
                self.xerr(404, "NoSuchKey", "The specified key does not exist.")
            self.send(204)
        self.xerr(405, "MethodNotAllowed", "Method not allowed")

    def hash_ok(self, data):
        want = parse_x_goog_hash(self.headers.get_all("x-goog-hash") or [])
        if "crc32c" in want and want["crc32c"] != crc_b64(crc32c(data)):
            return False
        if "md5" in want and want["md5"] != md5_b64(data):
            return False
        cm = self.headers.get("Content-MD5")
        if cm and cm.strip() != md5_b64(data):
            return False
        return True

    def mpu_init(self, name):
        S = self.S
        f = S.fault("init", name, name=name)
        if f:
            self.apply_simple_fault(f, json_api=False)
        uid = "ABPnzm" + secrets.token_urlsafe(30).replace("-", "x").replace("_", "y")
        os.makedirs(os.path.join(S.dir, "mpu", uid))
        meta = {k[len("x-goog-meta-"):]: v for k, v in self.headers.items()
                if k.lower().startswith("x-goog-meta-")}
        with S.lock:
            S.mpus[uid] = {"name": name, "parts": {}, "ctype": self.headers.get("Content-Type"),
                           "metadata": meta or None, "lock": threading.Lock()}
        self.rec["upload_id"] = uid
        self.send(200, "<?xml version='1.0' encoding='UTF-8'?><InitiateMultipartUploadResult "
                  "xmlns='%s'><Bucket>%s</Bucket><Key>%s</Key><UploadId>%s</UploadId>"
                  "</InitiateMultipartUploadResult>" % (S3NS, S.bucket, xml_escape(name), uid),
                  "application/xml")

    def mpu_op(self, name, uid):
        S = self.S
        self.rec["upload_id"] = uid
        with S.lock:
            u = S.mpus.get(uid)
        if u is None or u["name"] != name:
            self.xerr(404, "NoSuchUpload", "The requested upload was not found.")
        m = self.command
        if m == "PUT":
            try:
                pn = int(self.qd.get("partNumber", ""))
            except ValueError:
                self.xerr(400, "InvalidArgument", "partNumber must be an integer")
            if not 1 <= pn <= 10000:
                self.xerr(400, "InvalidArgument", "partNumber must be 1..10000")
            self.rec["part"] = pn
            f = S.fault("part", uid, unit=pn, name=name)
            if f:
                self.rec["fault"] = f
                if f["action"] == "drop":
                    self.drop(read=(self.body_len() or 0) // 2)
                self.apply_simple_fault(f, json_api=False)
            data = self.body()
            if not self.hash_ok(data):
                self.xerr(400, "BadDigest", "The x-goog-hash / Content-MD5 you specified did not "
                          "match what we received.")
            etag = '"%s"' % hashlib.md5(data).hexdigest()
            with open(os.path.join(S.dir, "mpu", uid, str(pn)), "wb") as fo:
                fo.write(data)
            with u["lock"]:
                u["parts"][pn] = {"etag": etag, "size": len(data)}
            self.send(200, b"", None, {"ETag": etag, "x-goog-hash": "crc32c=%s,md5=%s"
                                       % (crc_b64(crc32c(data)), md5_b64(data))})
        if m == "DELETE":
            with S.lock:
                S.mpus.pop(uid, None)
            for fn in os.listdir(os.path.join(S.dir, "mpu", uid)):
                os.remove(os.path.join(S.dir, "mpu", uid, fn))
            os.rmdir(os.path.join(S.dir, "mpu", uid))
            self.send(204)
        if m == "GET":
            with u["lock"]:
                parts = "".join("<Part><PartNumber>%d</PartNumber><ETag>%s</ETag><Size>%d</Size>"
                                "</Part>" % (n, xml_escape(p["etag"]), p["size"])
                                for n, p in sorted(u["parts"].items()))
            self.send(200, "<?xml version='1.0' encoding='UTF-8'?><ListPartsResult xmlns='%s'>"
                      "<Bucket>%s</Bucket><Key>%s</Key><UploadId>%s</UploadId>%s"
                      "</ListPartsResult>" % (S3NS, S.bucket, xml_escape(name), uid, parts),
                      "application/xml")
        if m != "POST":
            self.xerr(405, "MethodNotAllowed", "Method not allowed")
        f = S.fault("complete", uid, name=name)
        if f:
            self.apply_simple_fault(f, json_api=False)
        try:
            root = ElementTree.fromstring(self.body())
        except ElementTree.ParseError:
            self.xerr(400, "MalformedXML", "The XML you provided was not well-formed.")
        listed = []
        for p in root.iter():
            if p.tag.split("}")[-1] != "Part":
                continue
            num = etag = None
            for c in p:
                t = c.tag.split("}")[-1]
                if t == "PartNumber":
                    num = int(c.text)
                elif t == "ETag":
                    etag = (c.text or "").strip()
            listed.append((num, etag))
        if root.tag.split("}")[-1] != "CompleteMultipartUpload" or not listed:
            self.xerr(400, "MalformedXML", "CompleteMultipartUpload with at least one Part needed")
        with u["lock"]:
            prev = 0
            for i, (num, etag) in enumerate(listed):
                if num is None or num <= prev:
                    self.xerr(400, "InvalidPartOrder", "The list of parts was not in ascending "
                              "order.")
                prev = num
                have = u["parts"].get(num)
                if have is None or have["etag"].strip('"') != (etag or "").strip('"'):
                    self.xerr(400, "InvalidPart", "Part %s was not uploaded or its ETag %s does "
                              "not match %s" % (num, etag, have and have["etag"]))
                if i < len(listed) - 1 and have["size"] < MIN_PART:
                    self.xerr(400, "EntityTooSmall", "Part %d is %d bytes; all parts but the "
                              "last must be >= 5 MiB" % (num, have["size"]))
            tmp = os.path.join(S.dir, "sessions", "mpu-" + uid)
            crc = 0
            with open(tmp, "wb") as fo:
                for num, _ in listed:
                    with open(os.path.join(S.dir, "mpu", uid, str(num)), "rb") as fi:
                        d = fi.read()
                    crc = crc32c(d, crc)
                    fo.write(d)
            mm, e = S.put_object(name, tmp, crc, None, u["ctype"], u["metadata"], None,
                                 md5_ok=False)
            with S.lock:
                S.mpus.pop(uid, None)
            for fn in os.listdir(os.path.join(S.dir, "mpu", uid)):
                os.remove(os.path.join(S.dir, "mpu", uid, fn))
            os.rmdir(os.path.join(S.dir, "mpu", uid))
        etag = '"%s-%d"' % (hashlib.md5(b"".join(bytes.fromhex(e.strip('"'))
                                                  for _, e in listed)).hexdigest(), len(listed))
        self.send(200, "<?xml version='1.0' encoding='UTF-8'?><CompleteMultipartUploadResult "
                  "xmlns='%s'><Location>http://%s/%s/%s</Location><Bucket>%s</Bucket><Key>%s"
                  "</Key><ETag>%s</ETag></CompleteMultipartUploadResult>"
                  % (S3NS, self.headers.get("Host"), S.bucket, xml_escape(name), S.bucket,
                     xml_escape(name), xml_escape(etag)), "application/xml",
                  {"x-goog-hash": "crc32c=" + mm["crc32c"], "x-goog-generation": mm["generation"]})

    # ------------------------------------------------------------ V4 signatures
    def canonical_headers(self, signed):
        lines = []
        for h in signed:
            vals = self.headers.get_all(h)
            if h == "host":
                vals = [self.headers.get("Host")]
            if not vals or vals == [None]:
                return None, h
            lines.append("%s:%s\n" % (h, ",".join(" ".join(v.split()) for v in vals)))
        return "".join(lines), None

    def sig_error(self, status, code, msg, sts="", creq=""):
        extra = ""
        if sts:
            extra = "<StringToSign>%s</StringToSign><CanonicalRequest>%s</CanonicalRequest>" % (
                xml_escape(sts), xml_escape(creq))
        self.rec["sig_error"] = msg
        self.xerr(status, code, msg, extra)

    def check_credential(self, cred, algo, date):
        parts = cred.split("/")
        if len(parts) != 5 or parts[3] != "storage" or parts[4] != "goog4_request":
            self.sig_error(400, "AuthorizationQueryParametersError",
                           "Credential must be ID/DATE/REGION/storage/goog4_request: " + cred)
        ident, cdate, region = parts[0], parts[1], parts[2]
        if cdate != date[:8]:
            self.sig_error(400, "AuthorizationQueryParametersError",
                           "The credential date %s is not the date of %s" % (cdate, date))
        S = self.S
        if algo == "GOOG4-RSA-SHA256":
            if ident != S.client_email:
                self.sig_error(403, "InvalidAccessKeyId", "Unknown service account " + ident)
        elif algo == "GOOG4-HMAC-SHA256":
            if not S.args.hmac_id or ident != S.args.hmac_id:
                self.sig_error(403, "InvalidAccessKeyId",
                               "The Access Key Id you provided does not exist in our records.")
        else:
            self.sig_error(400, "InvalidArgument", "Unsupported algorithm " + algo)
        return ident, cdate, region

    def verify_sig(self, algo, sts, sig_hex, cdate, region, creq):
        S = self.S
        try:
            sig = bytes.fromhex(sig_hex)
        except ValueError:
            self.sig_error(403, "SignatureDoesNotMatch", "The signature is not hex", sts, creq)
        if algo == "GOOG4-RSA-SHA256":
            try:
                S.public_key.verify(sig, sts.encode(), padding.PKCS1v15(), hashes.SHA256())
                return
            except InvalidSignature:
                pass
        else:
            k = hmac.new(("GOOG4" + S.args.hmac_secret).encode(), cdate.encode(),
                         hashlib.sha256).digest()
            for part in (region, "storage", "goog4_request"):
                k = hmac.new(k, part.encode(), hashlib.sha256).digest()
            if hmac.compare_digest(hmac.new(k, sts.encode(), hashlib.sha256).digest(), sig):
                return
        self.sig_error(403, "SignatureDoesNotMatch", "The request signature we calculated does "
                       "not match the signature you provided. Check your Google secret key and "
                       "signing method.", sts, creq)

    def verify_signed_url(self):
        q = self.q
        d = {}
        for k, v in q:
            d[k.lower()] = v
        for need in ("x-goog-algorithm", "x-goog-credential", "x-goog-date", "x-goog-expires",
                     "x-goog-signedheaders", "x-goog-signature"):
            if need not in d:
                self.sig_error(400, "AuthorizationQueryParametersError",
                               "Missing query parameter " + need)
        algo, date = d["x-goog-algorithm"], d["x-goog-date"]
        self.rec["auth"] = "signed-url " + algo
        try:
            t0 = datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
            exp = int(d["x-goog-expires"])
        except ValueError:
            self.sig_error(400, "AuthorizationQueryParametersError", "Bad X-Goog-Date/Expires")
        if not 1 <= exp <= 604800:
            self.sig_error(400, "AuthorizationQueryParametersError", "X-Goog-Expires must be "
                           "1..604800 seconds (7 days)")
        ident, cdate, region = self.check_credential(d["x-goog-credential"], algo, date)
        signed = d["x-goog-signedheaders"].split(";")
        if "host" not in signed or signed != sorted(signed) or \
                any(h != h.lower() for h in signed):
            self.sig_error(400, "AuthorizationQueryParametersError",
                           "X-Goog-SignedHeaders must be sorted lower-case names including host")
        ch, missing = self.canonical_headers(signed)
        if ch is None:
            self.sig_error(403, "SignatureDoesNotMatch", "The signed header %s was not sent"
                           % missing)
        cq = "&".join("%s=%s" % (rfc3986(k), rfc3986(v)) for k, v in
                      sorted((k, v) for k, v in q if k.lower() != "x-goog-signature"))
        payload = "UNSIGNED-PAYLOAD"
        if "x-goog-content-sha256" in signed:
            payload = self.headers.get("x-goog-content-sha256")
        creq = "\n".join([self.command, self.rawpath, cq, ch, ";".join(signed), payload])
        sts = "\n".join([algo, date, "%s/%s/storage/goog4_request" % (cdate, region),
                         hashlib.sha256(creq.encode()).hexdigest()])
        self.verify_sig(algo, sts, d["x-goog-signature"], cdate, region, creq)
        now = time.time()
        if now > t0 + exp:
            self.sig_error(400, "ExpiredToken", "Invalid argument. The signed URL expired at %s"
                           % datetime.fromtimestamp(t0 + exp, timezone.utc).isoformat())
        if now < t0 - 900:
            self.sig_error(403, "RequestNotYetValid", "X-Goog-Date is more than 15 minutes ahead")
        if self.command == "POST" and "x-goog-resumable" not in signed:
            self.sig_error(403, "SignatureDoesNotMatch", "A signed POST must sign "
                           "x-goog-resumable:start")

    def verify_header_hmac(self, a):
        mo = re.fullmatch(r"GOOG4-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),"
                          r"\s*Signature=([0-9a-fA-F]+)", a.strip())
        if not mo:
            self.sig_error(400, "InvalidArgument", "Malformed GOOG4-HMAC-SHA256 Authorization")
        cred, signed, sig = mo.groups()
        self.rec["auth"] = "GOOG4-HMAC-SHA256 header"
        date = self.headers.get("x-goog-date")
        if not date:
            self.sig_error(400, "InvalidArgument", "x-goog-date header missing")
        try:
            t0 = datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            self.sig_error(400, "InvalidArgument", "Bad x-goog-date " + date)
        ident, cdate, region = self.check_credential(cred, "GOOG4-HMAC-SHA256", date)
        signed = signed.split(";")
        if "host" not in signed or "x-goog-date" not in signed or signed != sorted(signed):
            self.sig_error(400, "InvalidArgument", "SignedHeaders must be sorted and include "
                           "host and x-goog-date")
        ch, missing = self.canonical_headers(signed)
        if ch is None:
            self.sig_error(403, "SignatureDoesNotMatch", "Signed header %s not sent" % missing)
        payload = self.headers.get("x-goog-content-sha256") or "UNSIGNED-PAYLOAD"
        cq = "&".join("%s=%s" % (rfc3986(k), rfc3986(v)) for k, v in sorted(self.q))
        creq = "\n".join([self.command, self.rawpath, cq, ch, ";".join(signed), payload])
        sts = "\n".join(["GOOG4-HMAC-SHA256", date, "%s/%s/storage/goog4_request" % (cdate, region),
                         hashlib.sha256(creq.encode()).hexdigest()])
        self.verify_sig("GOOG4-HMAC-SHA256", sts, sig, cdate, region, creq)
        if abs(time.time() - t0) > 900:
            self.sig_error(403, "RequestTimeTooSkewed", "x-goog-date is more than 15 minutes "
                           "from the server's time")
        if payload != "UNSIGNED-PAYLOAD":
            if hashlib.sha256(self.body()).hexdigest() != payload.lower():
                self.sig_error(400, "BadDigest", "x-goog-content-sha256 does not match the body")


def xml_escape(s):
    return (str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;").replace('"', "&quot;"))


def verify_jwt(a, S):
    """None if the assertion is good, else why not."""
    try:
        hdr = jwt.get_unverified_header(a)
    except jwt.PyJWTError as e:
        return "Invalid JWT: " + str(e)
    if hdr.get("alg") != "RS256":
        return "Invalid JWT: alg must be RS256"
    if "kid" in hdr and hdr["kid"] != S.key_id:
        return "Invalid JWT Signature (unknown kid %s)" % hdr["kid"]
    try:
        c = jwt.decode(a, S.public_key, algorithms=["RS256"], audience=S.token_uri,
                       options={"require": ["iss", "aud", "iat", "exp"]}, leeway=0)
    except jwt.InvalidSignatureError:
        return "Invalid JWT Signature."
    except jwt.ExpiredSignatureError:
        return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable " \
               "timeframe. Check your iat and exp values in the JWT claim."
    except jwt.InvalidAudienceError:
        return "Invalid JWT: aud must be the token_uri %s" % S.token_uri
    except jwt.PyJWTError as e:
        return "Invalid JWT: " + str(e)
    if c.get("iss") != S.client_email:
        return "Invalid JWT: iss %r is not the key's client_email" % c.get("iss")
    if not isinstance(c.get("scope"), str) or not c["scope"].strip():
        return "Invalid JWT: scope missing (space-separated scopes)"
    if not all(s.startswith("https://www.googleapis.com/auth/") for s in c["scope"].split(" ")):
        return "Invalid JWT: scope must be space-separated https://www.googleapis.com/auth/ URLs"
    if "sub" in c:
        return "Invalid JWT: sub (domain-wide delegation) is not allowed for this account"
    if c["exp"] - c["iat"] > 3600 or c["exp"] <= c["iat"] or c["iat"] > time.time() + 60:
        return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable " \
               "timeframe. Check your iat and exp values in the JWT claim."
    return None


def make_key(args, port):
    if args.key_in:
        with open(args.key_in) as f:
            txt = "\n".join(l for l in f.read().splitlines() if '"comment"' not in l)
        src = json.loads(txt)
        pem = src["private_key"].encode()
        key_id = src.get("private_key_id") or secrets.token_hex(20)
        email = args.client_email or src["client_email"]
    else:
        k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
        key_id = secrets.token_hex(20)
        email = args.client_email or "amber-test@amber-test-project.iam.gserviceaccount.com"
    priv = serialization.load_pem_private_key(pem, None)
    sa = {"type": "service_account", "project_id": "amber-test-project",
          "private_key_id": key_id, "private_key": pem.decode(), "client_email": email,
          "client_id": "100000000000000000001",
          "auth_uri": "https://accounts.google.com/o/oauth2/auth",
          "token_uri": "http://127.0.0.1:%d/token" % port, "universe_domain": "googleapis.com"}
    tmp = args.key_out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(sa, f, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, args.key_out)
    return priv, key_id, email, sa["token_uri"]


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--dir")
    ap.add_argument("--key-out")
    ap.add_argument("--key-in")
    ap.add_argument("--client-email")
    ap.add_argument("--bucket", default="amber-test")
    ap.add_argument("--hmac-id")
    ap.add_argument("--hmac-secret")
    ap.add_argument("--faults")
    ap.add_argument("--faults-file")
    ap.add_argument("--log")
    ap.add_argument("--token-ttl", type=int, default=3600)
    ap.add_argument("--page-size", type=int, default=2)
    ap.add_argument("--no-auth", action="store_true")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args(argv)
    if not a.self_test and (not a.dir or not a.key_out):
        ap.error("--dir and --key-out are required")
    if bool(a.hmac_id) != bool(a.hmac_secret):
        ap.error("--hmac-id and --hmac-secret go together")
    return a


def serve(args, ready=None):
    os.makedirs(args.dir, exist_ok=True)
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    port = srv.server_address[1]
    S = State(args)
    S.private_key, S.key_id, S.client_email, S.token_uri = make_key(args, port)
    S.public_key = S.private_key.public_key()
    faults = args.faults
    if args.faults_file:
        with open(args.faults_file) as f:
            faults = f.read()
    if faults:
        S.set_faults(json.loads(faults))
    Handler.S = S
    if ready:
        ready(port, S, srv)
    else:
        print("ready %d" % port, flush=True)
    srv.serve_forever()


# ====================================================================== self-test
def self_test():
    import signal as _signal
    import tempfile
    import requests
    work = tempfile.mkdtemp(prefix="gcs-test-server-selftest-")
    fails = []

    def ck(ok, what, detail=""):
        print(("ok - " if ok else "not ok - ") + what + ("" if ok else ": %s" % detail),
              flush=True)
        if not ok:
            fails.append(what)
        return ok

    keyf = os.path.join(work, "key.json")
    logf = os.path.join(work, "log.jsonl")
    faults = [{"op": "chunk", "n": 2, "action": "partial", "keep": K256},
              {"op": "chunk", "n": 3, "action": "503"},
              {"op": "get", "n": 2, "action": "drop_mid"},
              {"op": "part", "n": 2, "action": "500"}]
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--port", "0",
                             "--dir", os.path.join(work, "data"), "--key-out", keyf,
                             "--hmac-id", "GOOG1TESTHMACID", "--hmac-secret", "s3cr3t/+abc",
                             "--faults", json.dumps(faults), "--log", logf, "--token-ttl", "3"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().split()
        ck(line[:1] == ["ready"], "prints `ready <port>`", line)
        port = int(line[1])
        base = "http://127.0.0.1:%d" % port
        B = "amber-test"
        sa = json.load(open(keyf))
        ck(sa["token_uri"] == base + "/token" and sa["type"] == "service_account" and
           "BEGIN PRIVATE KEY" in sa["private_key"], "writes a service-account key file")

        def assertion(**over):
            now = int(time.time())
            c = {"iss": sa["client_email"], "aud": sa["token_uri"], "iat": now, "exp": now + 3600,
                 "scope": "https://www.googleapis.com/auth/devstorage.read_write"}
            c.update(over)
            c = {k: v for k, v in c.items() if v is not None}
            return jwt.encode(c, sa["private_key"], algorithm="RS256",
                              headers={"kid": sa["private_key_id"]})

        def tok(a):
            return requests.post(base + "/token", data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": a})

        r = tok(assertion())
        ck(r.status_code == 200 and r.json()["token_type"] == "Bearer" and
           r.json()["expires_in"] == 3, "token: a good JWT gets a token", r.text)
        T = r.json()["access_token"]
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        bad = jwt.encode({"iss": sa["client_email"], "aud": sa["token_uri"], "iat": int(time.time()),
                          "exp": int(time.time()) + 3600, "scope": "https://www.googleapis.com/"
                          "auth/devstorage.read_write"}, other, algorithm="RS256")
        for what, a in (("another key's signature", bad), ("wrong aud", assertion(aud="x")),
                        ("no scope", assertion(scope=None)),
                        ("exp - iat > 3600", assertion(exp=int(time.time()) + 4000)),
                        ("expired", assertion(iat=int(time.time()) - 4000,
                                              exp=int(time.time()) - 400)),
                        ("wrong iss", assertion(iss="x@y"))):
            r = tok(a)
            ck(r.status_code == 400 and r.json()["error"] == "invalid_grant",
               "token: %s -> 400 invalid_grant" % what, r.text)
        r = requests.get(base + "/computeMetadata/v1/instance/service-accounts/default/token")
        ck(r.status_code == 403, "metadata: 403 without Metadata-Flavor")
        r = requests.get(base + "/computeMetadata/v1/instance/service-accounts/default/token",
                         headers={"Metadata-Flavor": "Google"})
        ck(r.status_code == 200 and r.headers.get("Metadata-Flavor") == "Google" and
           "access_token" in r.json(), "metadata: token with Metadata-Flavor: Google")
        H = {"Authorization": "Bearer " + T}
        name = "srv/abc 1.tar.gz"
        enc = urllib.parse.quote(name, safe="")
        r = requests.post(base + "/upload/storage/v1/b/%s/o?uploadType=resumable&name=%s" % (B, enc))
        ck(r.status_code == 401, "json: 401 without a token")
        r = requests.post(base + "/upload/storage/v1/b/%s/o?uploadType=resumable" % B, headers=H,
                          json={"name": name, "contentType": "application/gzip"})
        ck(r.status_code == 200 and "upload_id=" in r.headers.get("Location", ""),
           "resumable init: 200 + Location", r.text)
        sess = r.headers["Location"]
        data = os.urandom(3 * K256 + 1000)
        st = requests.put(sess, headers={"Content-Range": "bytes */*"})
        ck(st.status_code == 308 and "Range" not in st.headers,
           "status query with nothing persisted: 308, no Range")
        r = requests.put(sess, data=data[:1000], headers={"Content-Range": "bytes 0-999/*"})
        ck(r.status_code == 400, "a non-final chunk not a multiple of 256 KiB: 400")
        r = requests.put(sess, data=data[:K256], headers={"Content-Range": "bytes 0-%d/*" % (K256 - 1)})
        ck(r.status_code == 308 and r.headers.get("Range") == "bytes=0-%d" % (K256 - 1),
           "chunk 1: 308 Range bytes=0-262143", r.headers)
        r = requests.put(sess, data=data[2 * K256:3 * K256],
                         headers={"Content-Range": "bytes %d-%d/*" % (2 * K256, 3 * K256 - 1)})
        ck(r.status_code == 400, "a chunk past the persisted offset (a gap): 400")
        r = requests.put(sess, data=data[K256:3 * K256],
                         headers={"Content-Range": "bytes %d-%d/*" % (K256, 3 * K256 - 1)})
        ck(r.status_code == 308 and r.headers.get("Range") == "bytes=0-%d" % (2 * K256 - 1),
           "chunk 2 (fault partial, keep 256 KiB of 512): 308 with the smaller Range", r.headers)
        st = requests.put(sess, headers={"Content-Range": "bytes */*"})
        ck(st.status_code == 308 and st.headers.get("Range") == "bytes=0-%d" % (2 * K256 - 1),
           "status query: 308 Range bytes=0-524287")
        # resend overlapping data: starts at 256 KiB (already persisted up to 512 KiB)
        wrong = crc_b64(crc32c(b"x"))
        r = requests.put(sess, data=data[K256:], headers={
            "Content-Range": "bytes %d-%d/%d" % (K256, len(data) - 1, len(data)),
            "X-Goog-Hash": "crc32c=" + wrong})
        ck(r.status_code == 400, "final chunk with a wrong X-Goog-Hash crc32c: 400", r.text)
        r = requests.put(sess, data=data[2 * K256:], headers={
            "Content-Range": "bytes %d-%d/%d" % (2 * K256, len(data) - 1, len(data)),
            "X-Goog-Hash": "crc32c=" + crc_b64(crc32c(data))})
        ck(r.status_code == 503, "chunk 3 (a new offset, fault 503): 503", r.status_code)
        r = requests.put(sess, data=data[K256:], headers={
            "Content-Range": "bytes %d-%d/%d" % (K256, len(data) - 1, len(data)),
            "X-Goog-Hash": "crc32c=%s,md5=%s" % (crc_b64(crc32c(data)), md5_b64(data))})
        j = r.json() if r.status_code == 200 else {}
        ck(r.status_code == 200 and j.get("size") == str(len(data)) and
           j.get("crc32c") == crc_b64(crc32c(data)) and j.get("md5Hash") == md5_b64(data) and
           j.get("name") == name and isinstance(j.get("generation"), str),
           "final chunk overlapping the persisted bytes: 200 + object JSON (size, crc32c, md5)",
           r.text[:300])
        gen = j.get("generation")
        st = requests.put(sess, headers={"Content-Range": "bytes */*"})
        ck(st.status_code == 200 and st.json()["size"] == str(len(data)),
           "status query on a finalised session: 200 + object")
        with open(os.path.join(work, "data", "objects", B, enc), "rb") as f:
            ck(f.read() == data, "the data dir holds the object bytes")
        time.sleep(3.2)
        r = requests.get(base + "/storage/v1/b/%s/o/%s?alt=media" % (B, enc), headers=H)
        ck(r.status_code == 401, "an expired token: 401 (token-ttl 3)")
        T = tok(assertion()).json()["access_token"]
        H = {"Authorization": "Bearer " + T}
        u = base + "/storage/v1/b/%s/o/%s" % (B, enc)
        r = requests.get(u + "?alt=media", headers=H)
        ck(r.status_code == 200 and r.content == data and r.headers["X-Goog-Generation"] == gen and
           r.headers["X-Goog-Hash"] == "crc32c=%s,md5=%s" % (crc_b64(crc32c(data)), md5_b64(data)),
           "alt=media: the bytes, X-Goog-Generation, X-Goog-Hash")
        try:
            r = requests.get(u + "?alt=media", headers=H)
            ck(len(r.content) < len(data), "get 2 (fault drop_mid): cut mid-body")
        except requests.RequestException:
            ck(True, "get 2 (fault drop_mid): cut mid-body")
        r = requests.get(u + "?alt=media&ifGenerationMatch=" + gen,
                         headers=dict(H, Range="bytes=1000-"))
        ck(r.status_code == 206 and r.content == data[1000:] and
           r.headers["Content-Range"] == "bytes 1000-%d/%d" % (len(data) - 1, len(data)),
           "Range bytes=1000- pinned to the generation: 206")
        r = requests.get(u + "?alt=media&ifGenerationMatch=1", headers=H)
        ck(r.status_code == 412, "ifGenerationMatch mismatch: 412")
        r = requests.get(u + "?alt=media", headers=dict(H, Range="bytes=%d-" % len(data)))
        ck(r.status_code == 416 and r.headers["Content-Range"] == "bytes */%d" % len(data), "416")
        r = requests.get(base + "/storage/v1/b/%s/o/srv/abc%%201.tar.gz?alt=media" % B, headers=H)
        ck(r.status_code == 404, "a JSON path with a literal / in the name: 404")
        r = requests.get(u, headers=H)
        ck(r.status_code == 200 and r.json()["crc32c"] == crc_b64(crc32c(data)), "metadata GET")
        # cancel a session
        r = requests.post(base + "/upload/storage/v1/b/%s/o?uploadType=resumable&name=x" % B,
                          headers=H)
        s2 = r.headers["Location"]
        ck(requests.delete(s2).status_code == 499, "DELETE session: 499")
        ck(requests.put(s2, headers={"Content-Range": "bytes */*"}).status_code == 410,
           "a cancelled session: 410")
        ck(requests.put(s2.replace("upload_id=", "upload_id=zz"),
                        headers={"Content-Range": "bytes */*"}).status_code == 404,
           "an unknown session: 404")
        # list paging
        for i in range(3):
            requests.post(base + "/upload/storage/v1/b/%s/o?uploadType=media&name=l%%2F%d" % (B, i),
                          headers=H, data=b"x%d" % i)
        seen, pt, pages = [], None, 0
        while True:
            r = requests.get(base + "/storage/v1/b/%s/o" % B, headers=H,
                             params={"prefix": "l/", **({"pageToken": pt} if pt else {})})
            pages += 1
            seen += [i["name"] for i in r.json()["items"]]
            pt = r.json().get("nextPageToken")
            if not pt:
                break
        ck(seen == ["l/0", "l/1", "l/2"] and pages == 2, "list with prefix, 2 pages", seen)
        # ---- signed URLs: RSA and HMAC
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        xpath = "/%s/%s" % (B, "/".join(urllib.parse.quote(s, safe="~") for s in name.split("/")))
        url = sign_url(sa, "GET", "127.0.0.1:%d" % port, xpath, 60)
        r = requests.get("http://127.0.0.1:%d" % port + url)
        ck(r.status_code == 200 and r.content == data, "GOOG4-RSA-SHA256 signed URL: 200", r.text[:300])
        r = requests.get("http://127.0.0.1:%d" % port + url, headers={"Range": "bytes=0-9"})
        ck(r.status_code == 206 and r.content == data[:10], "signed URL + unsigned Range: 206")
        r = requests.get("http://127.0.0.1:%d" % port + url.replace("X-Goog-Expires=60",
                                                                    "X-Goog-Expires=61"))
        ck(r.status_code == 403 and b"SignatureDoesNotMatch" in r.content, "tampered URL: 403")
        old = sign_url(sa, "GET", "127.0.0.1:%d" % port, xpath, 1, t=time.time() - 10)
        r = requests.get("http://127.0.0.1:%d" % port + old)
        ck(r.status_code == 400 and b"ExpiredToken" in r.content, "expired URL: 400 ExpiredToken")
        url = sign_url(None, "GET", "127.0.0.1:%d" % port, xpath, 60,
                       hmac_key=("GOOG1TESTHMACID", "s3cr3t/+abc"))
        r = requests.get("http://127.0.0.1:%d" % port + url)
        ck(r.status_code == 200 and r.content == data, "GOOG4-HMAC-SHA256 signed URL: 200")
        url = sign_url(None, "GET", "127.0.0.1:%d" % port, xpath, 60,
                       hmac_key=("GOOG1TESTHMACID", "wrong"))
        ck(requests.get("http://127.0.0.1:%d" % port + url).status_code == 403,
           "HMAC signed URL with a wrong secret: 403")
        # signed resumable POST
        url = sign_url(sa, "POST", "127.0.0.1:%d" % port, "/%s/up/loaded" % B, 60,
                       headers={"x-goog-resumable": "start"})
        r = requests.post("http://127.0.0.1:%d" % port + url, headers={"x-goog-resumable": "start"})
        ck(r.status_code == 201 and "upload_id=" in r.headers.get("Location", ""),
           "signed POST x-goog-resumable:start: 201 + Location", r.text[:300])
        if r.status_code == 201:
            r = requests.put(r.headers["Location"], data=b"hello",
                             headers={"Content-Range": "bytes 0-4/5"})
            ck(r.status_code == 200 and r.headers.get("x-goog-hash", "").startswith("crc32c="),
               "the XML session finalises with x-goog-hash")
        # ---- XML multipart with header HMAC
        hk = ("GOOG1TESTHMACID", "s3cr3t/+abc")
        obj = "/%s/mpu/obj" % B
        hostp = "127.0.0.1:%d" % port

        def xreq(method, q, body=b"", extra=None, key=hk):
            h = hmac_headers(method, hostp, obj, q, body, key, extra)
            return requests.request(method, "http://%s%s%s" % (hostp, obj, "?" + q if q else ""),
                                    data=body, headers=h)
        r = xreq("POST", "uploads=")
        uid = re.search(r"<UploadId>([^<]+)</UploadId>", r.text)
        ck(r.status_code == 200 and uid, "XML MPU initiate (header GOOG4-HMAC): UploadId", r.text)
        ck(xreq("POST", "uploads=", key=(hk[0], "nope")).status_code == 403,
           "XML with a wrong HMAC secret: 403")
        uid = uid.group(1)
        p1, p2 = os.urandom(MIN_PART), os.urandom(1234)
        r1 = xreq("PUT", "partNumber=1&uploadId=" + uid, p1)
        r2 = xreq("PUT", "partNumber=2&uploadId=" + uid, p2)
        ck(r1.status_code == 200 and r2.status_code == 500, "part 1 ok, part 2 (fault 500): 500")
        r2 = xreq("PUT", "partNumber=2&uploadId=" + uid, p2,
                  {"x-goog-hash": "crc32c=" + crc_b64(crc32c(p2))})
        ck(r2.status_code == 200 and r2.headers["ETag"] == '"%s"' % hashlib.md5(p2).hexdigest(),
           "part 2 retried: 200 + ETag")
        cx = lambda parts: ("<CompleteMultipartUpload>%s</CompleteMultipartUpload>" % "".join(
            "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>" % p for p in parts)).encode()
        e1, e2 = r1.headers["ETag"], r2.headers["ETag"]
        ck(xreq("POST", "uploadId=" + uid, cx([(2, e2), (1, e1)])).status_code == 400,
           "complete with parts out of order: 400")
        ck(xreq("POST", "uploadId=" + uid, cx([(1, e2), (2, e2)])).status_code == 400,
           "complete with a wrong ETag: 400")
        r = xreq("POST", "uploadId=" + uid, cx([(1, e1), (2, e2)]))
        ck(r.status_code == 200 and r.headers.get("x-goog-hash") == "crc32c=" +
           crc_b64(crc32c(p1 + p2)), "complete: 200 + x-goog-hash crc32c", r.text[:300])
        r = xreq("GET", "", extra={"Range": "bytes=%d-" % (MIN_PART - 2)})
        ck(r.status_code == 206 and r.content == (p1 + p2)[MIN_PART - 2:], "XML GET with Range")
        r = xreq("POST", "uploads=")
        uid2 = re.search(r"<UploadId>([^<]+)</UploadId>", r.text).group(1)
        ck(xreq("DELETE", "uploadId=" + uid2).status_code == 204, "XML MPU abort: 204")
        ck(xreq("PUT", "partNumber=1&uploadId=" + uid2, b"x").status_code == 404,
           "aborted upload: 404 NoSuchUpload")
        seen, tokn, pages = [], None, 0
        while pages < 10:
            q = "list-type=2&prefix=l%2F" + ("&continuation-token=" + rfc3986(tokn) if tokn else "")
            h = hmac_headers("GET", hostp, "/" + B, q, b"", hk)
            r = requests.get("http://%s/%s?%s" % (hostp, B, q), headers=h)
            pages += 1
            seen += re.findall(r"<Key>([^<]+)</Key>", r.text)
            mo = re.search(r"<NextContinuationToken>([^<]+)<", r.text)
            if "<IsTruncated>true<" not in r.text or not mo:
                break
            tokn = mo.group(1)
        ck(seen == ["l/0", "l/1", "l/2"] and pages == 2, "XML ListObjectsV2 (HMAC), 2 pages",
           seen)
        ck(xreq("DELETE", "").status_code == 204, "XML DELETE object: 204")
        ck(xreq("DELETE", "").status_code == 404, "XML DELETE a missing object: 404")
        H = {"Authorization": "Bearer " + tok(assertion()).json()["access_token"]}  # ttl 3 s
        ck(requests.delete(u, headers=H).status_code == 204, "JSON DELETE: 204")
        ck(requests.delete(u, headers=H).status_code == 404, "JSON DELETE again: 404")
        # lost session fault via the control endpoint
        requests.post(base + "/__control/faults", json=[{"op": "chunk", "n": 2, "action": "lost"}])
        r = requests.post(base + "/upload/storage/v1/b/%s/o?uploadType=resumable&name=lost" % B,
                          headers=H)
        s3 = r.headers["Location"]
        requests.put(s3, data=data[:K256], headers={"Content-Range": "bytes 0-%d/*" % (K256 - 1)})
        r = requests.put(s3, data=data[K256:2 * K256],
                         headers={"Content-Range": "bytes %d-%d/*" % (K256, 2 * K256 - 1)})
        ck(r.status_code == 404 and requests.put(s3, headers={"Content-Range": "bytes */*"})
           .status_code == 404, "chunk 2 with fault lost: 404, and 404 afterwards")
        with open(logf) as f:
            recs = [json.loads(x) for x in f]
        ck(len(recs) > 40 and all("status" in x for x in recs), "every request logged (%d)" % len(recs))
    finally:
        proc.send_signal(_signal.SIGTERM)
        proc.wait(10)
    print("self-test: %d failed" % len(fails))
    if not fails:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    return 1 if fails else 0


def sign_url(sa, method, host, path, expires, t=None, hmac_key=None, headers=None,
             extra_query=None):
    """A V4 signed URL path+query (for tests): RSA with the SA key, or HMAC with (id, secret)."""
    t = time.time() if t is None else t
    ts = datetime.fromtimestamp(int(t), timezone.utc)
    date, stamp = ts.strftime("%Y%m%d"), ts.strftime("%Y%m%dT%H%M%SZ")
    ident = hmac_key[0] if hmac_key else sa["client_email"]
    algo = "GOOG4-HMAC-SHA256" if hmac_key else "GOOG4-RSA-SHA256"
    hs = dict({"host": host}, **(headers or {}))
    signed = ";".join(sorted(hs))
    q = {"X-Goog-Algorithm": algo, "X-Goog-Credential": "%s/%s/auto/storage/goog4_request"
         % (ident, date), "X-Goog-Date": stamp, "X-Goog-Expires": str(expires),
         "X-Goog-SignedHeaders": signed}
    q.update(extra_query or {})
    cq = "&".join("%s=%s" % (rfc3986(k), rfc3986(v)) for k, v in sorted(q.items()))
    ch = "".join("%s:%s\n" % (k, hs[k]) for k in sorted(hs))
    creq = "\n".join([method, path, cq, ch, signed, "UNSIGNED-PAYLOAD"])
    sts = "\n".join([algo, stamp, "%s/auto/storage/goog4_request" % date,
                     hashlib.sha256(creq.encode()).hexdigest()])
    if hmac_key:
        k = hmac.new(("GOOG4" + hmac_key[1]).encode(), date.encode(), hashlib.sha256).digest()
        for part in ("auto", "storage", "goog4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    else:
        key = serialization.load_pem_private_key(sa["private_key"].encode(), None)
        sig = key.sign(sts.encode(), padding.PKCS1v15(), hashes.SHA256()).hex()
    return "%s?%s&X-Goog-Signature=%s" % (path, cq, sig)


def hmac_headers(method, host, path, query, body, key, extra=None):
    """Headers for a header-signed GOOG4-HMAC-SHA256 XML request (for tests)."""
    ts = datetime.now(timezone.utc)
    date, stamp = ts.strftime("%Y%m%d"), ts.strftime("%Y%m%dT%H%M%SZ")
    payload = hashlib.sha256(body).hexdigest()
    hs = {"host": host, "x-goog-date": stamp, "x-goog-content-sha256": payload}
    hs.update({k.lower(): v for k, v in (extra or {}).items() if k.lower().startswith("x-goog-")})
    signed = ";".join(sorted(hs))
    cq = "&".join("%s=%s" % (rfc3986(k), rfc3986(v)) for k, v in sorted(parse_query(query)))
    ch = "".join("%s:%s\n" % (k, hs[k]) for k in sorted(hs))
    creq = "\n".join([method, path, cq, ch, signed, payload])
    sts = "\n".join(["GOOG4-HMAC-SHA256", stamp, "%s/auto/storage/goog4_request" % date,
                     hashlib.sha256(creq.encode()).hexdigest()])
    k = hmac.new(("GOOG4" + key[1]).encode(), date.encode(), hashlib.sha256).digest()
    for part in ("auto", "storage", "goog4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    out = {k2: v for k2, v in hs.items() if k2 != "host"}
    out.update(extra or {})
    out["Authorization"] = ("GOOG4-HMAC-SHA256 Credential=%s/%s/auto/storage/goog4_request, "
                            "SignedHeaders=%s, Signature=%s" % (key[0], date, signed, sig))
    return out


if __name__ == "__main__":
    _args = parse_args(sys.argv[1:])
    if _args.self_test:
        sys.exit(self_test())
    try:
        serve(_args)
    except KeyboardInterrupt:
        pass
