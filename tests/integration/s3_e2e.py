#!/usr/bin/python3
"""Backups in S3 through amberd, in both of the protocol's modes, against s3rver 5.

s3_e2e.py AMBERD AMBER ADAPTER_DIR SOURCE_DIR

The S3 peer is @20minutes/s3rver 5.0.0 (installed by scripts/setup into .peers/), which
checks SigV4 on header-signed requests and on presigned URLs. In front of it runs
tests/s3/fault_proxy.py, which forwards requests unchanged (so signatures still verify)
and, when told to, drops connections mid-body or answers 500/503.

Panel A (amberd all-in-one) has an `s3` instance with credentials: its own node uploads
directly (direct mode) and the panel presigns part URLs, downloads and restores. Node B
(a second amberd) has no `s3` instance, as a Wings node has none: it asks the panel for
presigned part URLs and restores from the download_url the panel sends
(panel-presigned mode). Judges: /usr/bin/aws s3api (head-object, get-object), GNU tar,
compare_trees.py, the store's records.

What s3rver cannot check (it answers 405 to AbortMultipartUpload and does not verify
part ETags) is named in the checks that meet it."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import requests

AMBERD, AMBER, ADAPTERS, SRC = sys.argv[1:5]
from e2e_util import (ALL, Client, Daemon, check, compare, db_rows,  # noqa: E402
                     free_port, key, setup)
from e2e_util import results  # noqa: E402

work = setup(AMBERD, AMBER, ADAPTERS, SRC, "amber-s3-e2e-")
PEERS = os.environ.get("AMBER_PEERS_DIR", f"{SRC}/.peers")
BUCKET = "amber-e2e"
AWS = "/usr/bin/aws"
PART = 5 << 20


def need(path, what):
    if not os.path.exists(path):
        print(f"not ok - {what} is missing ({path}): run scripts/setup", flush=True)
        sys.exit(1)


need(f"{PEERS}/node_modules/@20minutes/s3rver", "the S3 peer @20minutes/s3rver")
need(AWS, "awscli's /usr/bin/aws")


def wait_port(port, proc, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
            return True
        except requests.RequestException:
            if proc.poll() is not None:
                return False
            time.sleep(0.1)
    return False


s3_port = free_port()
s3_dir = f"{work}/s3rver"
os.makedirs(s3_dir)
s3 = subprocess.Popen(["node", "--openssl-legacy-provider", f"{SRC}/tests/tools/s3rver.js",
                       "-d", s3_dir, "-a", "127.0.0.1", "-p", str(s3_port), "--silent",
                       "--configure-bucket", BUCKET],
                      env=dict(os.environ, NODE_PATH=f"{PEERS}/node_modules"))
proxy_port = free_port()
proxy = None


def start_proxy(mode):
    """(Re)starts tests/s3/fault_proxy.py on the same port with a fresh fault schedule:
    "none", "flaky" (the first attempts of parts 1-3 are dropped mid-body or answered
    500/503, the first full GetObject is cut off) or "permanent" (part 2 always 500)."""
    global proxy
    if proxy:
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(10)
    proxy = subprocess.Popen([sys.executable, f"{SRC}/tests/s3/fault_proxy.py", str(proxy_port),
                              str(s3_port), f"{work}/proxy-{mode}.log", mode])
    return wait_port(proxy_port, proxy)


def aws(*args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="S3RVER", AWS_SECRET_ACCESS_KEY="S3RVER",
               AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="")
    return subprocess.run([AWS, "--endpoint-url", f"http://127.0.0.1:{s3_port}", "s3api", *args],
                          capture_output=True, text=True, env=env)


def s3_config(secret="S3RVER"):
    return f"""[adapters.s3]
endpoint = "http://127.0.0.1:{proxy_port}"
region = "us-east-1"
bucket = "{BUCKET}"
access_key_id = "S3RVER"
secret_access_key = "{secret}"
path_style = true
part_size = "5MiB"
parallel_parts = 3
"""


PANEL = ('default_adapter = "s3"\npart_size = "5MiB"\nthrottle_limit = 0\ndownload_ttl = "5s"\n'
         'presign_ttl = "10m"')
A = Daemon("panel", panel_extra=PANEL, adapters_extra=s3_config())
B = Daemon("nodeb", panel_url=A.url)


def big_server(daemon, node):
    """The demo tree plus 17 MiB that does not compress: four 5 MiB parts."""
    s = daemon.new_server(A, limit=50, node=node)
    with open(f"{daemon.data}/{s}/world.bin", "wb") as f:
        f.write(os.urandom(17 << 20))
    return s


def object_key(server, backup):
    return f"{server}/{backup}.tar.gz"


def verify_object(daemon, server, backup, attrs, what):
    """The object S3 holds is the archive the panel recorded: size, sha1, a tree GNU tar
    lists and python extracts to what the server had."""
    head = aws("head-object", "--bucket", BUCKET, "--key", object_key(server, backup))
    ok = check(head.returncode == 0, f"{what}: aws s3api head-object finds the object",
               head.stderr[-300:])
    if ok:
        size = json.loads(head.stdout)["ContentLength"]
        check(size == attrs["bytes"], f"{what}: its size is the reported size",
              f"{size} != {attrs['bytes']}")
    out = f"{work}/{backup}.tar.gz"
    get = aws("get-object", "--bucket", BUCKET, "--key", object_key(server, backup), out)
    if not check(get.returncode == 0, f"{what}: aws s3api get-object reads it", get.stderr[-300:]):
        return
    with open(out, "rb") as f:
        data = f.read()
    check(hashlib.sha1(data).hexdigest() == attrs["checksum"][5:],
          f"{what}: sha1 of the object is the reported checksum")
    check(hashlib.sha256(data).hexdigest() == attrs["sha256_hash"],
          f"{what}: sha256 of the object is the reported sha256_hash")
    ex = f"{work}/{backup}-x"
    os.makedirs(ex)
    t = subprocess.run(["tar", "-xzf", out, "-C", ex], capture_output=True, text=True)
    same, why = compare(f"{daemon.data}/{server}", ex, "*.log")
    check(t.returncode == 0 and same, f"{what}: GNU tar extracts the server's tree", why)


try:
    if not check(wait_port(s3_port, s3), "s3rver 5 starts (SigV4-checking S3 peer)") or \
            not check(start_proxy("none"), "the fault proxy starts") or \
            not check(A.start(), "panel A starts with an s3 instance") or \
            not check(B.start(), "node B starts without one"):
        sys.exit(1)
    r = A.amber("node", "add", "--name", "nodeb", "--url", B.url, "--token-id", B.token_id,
                "--token-file", f"{B.dir}/token")
    check(r.returncode == 0, "node B registered", r.stderr)
    u = Client(A, key(A, ALL))

    modes = {"direct (node A has credentials)": (A, "local"),
             "panel-presigned (node B has none)": (B, "nodeb")}
    for mode, (daemon, node) in modes.items():
        s = big_server(daemon, node)
        r = u.create(s, name=mode)
        b = r.json()["attributes"]["uuid"] if r.status_code == 200 else ""
        attrs = u.wait(s, b)
        ok = check(attrs and attrs["is_successful"] is True, f"{mode}: the backup completes",
                   json.dumps(attrs)[:400])
        if not ok:
            continue
        verify_object(daemon, s, b, attrs, mode)
        if node == "nodeb":
            parts = json.loads(db_rows(A.db, "SELECT parts FROM backups WHERE uuid = ?", b)[0][0])
            check([p["part_number"] for p in parts] == list(range(1, len(parts) + 1)) and
                  len(parts) >= 4 and all(p["etag"] for p in parts),
                  f"{mode}: the node reported every part it used, in order, with ETags "
                  "(s3rver does not verify ETags at Complete)", json.dumps(parts)[:300])
        with open(f"{work}/proxy-none.log") as f:
            puts = [json.loads(line) for line in f]
        puts = [p for p in puts if p["method"] == "PUT" and p["part"] and
                object_key(s, b) in p["path"]]
        check(len(puts) >= 4 and max(p.get("inflight", 0) for p in puts) >= 2,
              f"{mode}: {len(puts)} parts went to S3, several in flight at once",
              json.dumps(puts)[:300])
        want = "600" if node == "nodeb" else None
        check(all(p["expires"] == want for p in puts),
              f"{mode}: " + ("the part URLs live as long as [panel] presign_ttl (10m)"
                             if want else "the node signs its own part requests (headers)"),
              str([p["expires"] for p in puts]))
        leftovers = [os.path.join(d, f) for d, _, fs in os.walk(daemon.dir) for f in fs
                     if not d.startswith(daemon.data) and
                     os.path.getsize(os.path.join(d, f)) >= PART]
        check(not leftovers, f"{mode}: no local copy of the archive (no file >= a part)",
              str(leftovers))
        # the client API hands out a presigned GET: plain curl downloads it
        r = u.req("GET", f"/{s}/backups/{b}/download")
        url = r.json().get("attributes", {}).get("url", "") if r.status_code == 200 else ""
        check(url.startswith(f"http://127.0.0.1:{proxy_port}/") and "X-Amz-Signature=" in url,
              f"{mode}: download is a presigned S3 URL", r.text[:300])
        c = subprocess.run(["curl", "-sf", "-o", f"{work}/dl.tar.gz", url])
        check(c.returncode == 0 and
              hashlib.sha1(open(f"{work}/dl.tar.gz", "rb").read()).hexdigest() ==
              attrs["checksum"][5:], f"{mode}: curl downloads the archive from the URL")
        tampered = url.replace("X-Amz-Expires=5", "X-Amz-Expires=6")
        check(requests.get(tampered, timeout=10).status_code == 403,
              f"{mode}: a tampered URL is refused (403)")
        time.sleep(6.5)
        check(requests.get(url, timeout=10).status_code == 403,
              f"{mode}: the URL expires (403 after download_ttl)")
        # restore: the node streams the panel's presigned URL
        before = f"{work}/{b}-before"
        shutil.copytree(f"{daemon.data}/{s}", before, symlinks=True)
        os.remove(f"{daemon.data}/{s}/world.bin")
        with open(f"{daemon.data}/{s}/stray.txt", "w") as f:
            f.write("stray\n")
        r = u.req("POST", f"/{s}/backups/{b}/restore", {"truncate": True})
        check(r.status_code == 202 and u.wait_restored(s), f"{mode}: restore runs", r.text[:200])
        same, why = compare(before, f"{daemon.data}/{s}", "*.log")
        check(same, f"{mode}: the restored tree is the backed-up one", why)
        # delete: the panel deletes the object itself
        check(u.req("DELETE", f"/{s}/backups/{b}").status_code == 204, f"{mode}: delete: 204")
        check(aws("head-object", "--bucket", BUCKET, "--key", object_key(s, b)).returncode != 0,
              f"{mode}: the object is gone from S3")

    # ---- faults: dropped connections and 5xx on some parts, a cut download ----
    for mode, (daemon, node) in modes.items():
        start_proxy("flaky")
        s = big_server(daemon, node)
        r = u.create(s, name=f"{mode} with faults")
        b = r.json()["attributes"]["uuid"] if r.status_code == 200 else ""
        attrs = u.wait(s, b)
        if check(attrs and attrs["is_successful"] is True,
                 f"{mode}: parts dropped mid-body and answered 500/503 are re-sent; the "
                 "backup completes", json.dumps(attrs)[:300]):
            verify_object(daemon, s, b, attrs, f"{mode} with faults")
            before = f"{work}/{b}-before-faults"
            shutil.copytree(f"{daemon.data}/{s}", before, symlinks=True)
            os.remove(f"{daemon.data}/{s}/world.bin")
            r = u.req("POST", f"/{s}/backups/{b}/restore", {"truncate": True})
            same, why = compare(before, f"{daemon.data}/{s}", "*.log") \
                if r.status_code == 202 and u.wait_restored(s) else (False, r.text[:200])
            check(same, f"{mode}: a restore whose download is cut off mid-body resumes "
                  "(Range) and restores the tree", why)
    # a part that never goes through: the backup fails and says so; nothing is left
    for mode, (daemon, node) in modes.items():
        start_proxy("permanent")
        s = big_server(daemon, node)
        r = u.create(s, name=f"{mode}, permanent failure")
        b = r.json()["attributes"]["uuid"] if r.status_code == 200 else ""
        attrs = u.wait(s, b, timeout=300)
        check(attrs and attrs["is_successful"] is False and attrs["completed_at"],
              f"{mode}: a part that always fails: the backup is reported failed, no hang",
              json.dumps(attrs)[:300])
        check(aws("head-object", "--bucket", BUCKET, "--key", object_key(s, b)).returncode != 0,
              f"{mode}: no object was completed (s3rver answers 405 to the abort, so the "
              "upload itself lingers there)")
    start_proxy("none")
finally:
    A.stop()
    B.stop()

# ---- a wrong secret: refused by S3, reported as a clear failure ----
A.adapters_extra = s3_config(secret="not-the-secret")
A.write_config(PANEL)
try:
    if check(A.start() and B.start(), "panel A restarts with a wrong S3 secret"):
        for mode, (daemon, node) in modes.items():
            s = big_server(daemon, node)
            r = u.create(s, name=f"{mode}, wrong secret")
            b = r.json()["attributes"]["uuid"] if r.status_code == 200 else ""
            attrs = u.wait(s, b, timeout=120) if b else None
            if node == "local":
                check(attrs and attrs["is_successful"] is False and
                      "Signature" in (attrs.get("failure_reason") or "") + json.dumps(attrs),
                      f"{mode}: the backup fails with S3's reason", json.dumps(attrs)[:400])
            else:
                check((attrs and attrs["is_successful"] is False) or r.status_code >= 400,
                      f"{mode}: the refused part URLs fail the backup",
                      f"{r.status_code} {json.dumps(attrs)[:300]}")
finally:
    A.stop()
    B.stop()
    for p in (proxy, s3):
        if p is None:
            continue
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()

print(f"s3_e2e: {results['passed']} passed, {results['failed']} failed", flush=True)
if results["failed"] == 0:
    shutil.rmtree(work, ignore_errors=True)
else:
    print(f"(scratch kept in {work})")
sys.exit(1 if results["failed"] else 0)
