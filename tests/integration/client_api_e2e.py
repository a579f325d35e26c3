#!/usr/bin/python3
"""The client API end to end, over real HTTP, with two nodes behind one panel.

client_api_e2e.py AMBERD AMBER ADAPTER_DIR SOURCE_DIR MEMORY_SO OLD_SO

Starts panel A (amberd all-in-one: client API, remote API and the "local" node) and
node B (a second amberd whose reports go to A), registers B, servers and keys with the
`amber` CLI as an operator would, then plays the user with python3-requests: the seed
004 flows, every error the issue lists, permissions per route, keys scoped to servers,
a node that is down (502) and one that never answers (504). The same flows then run
through two more independent clients: curl (client_flow_curl.sh) and node's built-in
fetch (client_flow_fetch.mjs). Judges: the archives themselves (sha1, GNU tar, python
tarfile), compare_trees.py, the SQLite store read with sqlite3.
Prints one "ok"/"not ok" line per check and "client_api_e2e: N passed, M failed"."""
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid

import requests

AMBERD, AMBER, ADAPTERS, SRC, MEMORY_SO, OLD_SO = sys.argv[1:7]
COMPARE = f"{SRC}/tests/tools/compare_trees.py"
from e2e_util import (ALL, Client, Daemon, P, check, compare, db_rows, expect_err,  # noqa: E402
                      free_port, key, setup, sha1_file)
from e2e_util import results  # noqa: E402

work = setup(AMBERD, AMBER, ADAPTERS, SRC, "amber-client-e2e-")


class SilentNode:
    """Accepts connections and never answers: a node that hangs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)


A = Daemon("panel", panel_extra='throttle_limit = 0\nmax_backup_size = "0"')
B = Daemon("nodeb", panel_url=A.url)
try:
    if not check(A.start(), "panel A (amberd all-in-one) starts") or \
            not check(B.start(), "node B (a second amberd) starts"):
        sys.exit(1)
    r = A.amber("node", "add", "--name", "nodeb", "--url", B.url, "--token-id", B.token_id,
                "--token-file", f"{B.dir}/token")
    check(r.returncode == 0, "amber node add registers node B with the panel", r.stderr)
    dead_port = free_port()
    A.amber("node", "add", "--name", "dead", "--url", f"http://127.0.0.1:{dead_port}",
            "--token-id", "deadid", "--token", "deadtoken")
    silent = SilentNode()
    A.amber("node", "add", "--name", "silent", "--url", f"http://127.0.0.1:{silent.port}",
            "--token-id", "silentid", "--token", "silenttoken")

    s1 = A.new_server(A)                         # local node, [panel] backup_limit (10)
    s2 = B.new_server(A, node="nodeb")           # on node B
    s_lim = A.new_server(A, limit=1)
    s_zero = A.new_server(A, limit=0)
    s_page = A.new_server(A, limit=20, demo=False)
    s_big = A.new_server(A, limit=20, demo=False)
    s_sparse = A.new_server(A, demo=False)
    s_dead = str(uuid.uuid4())
    A.amber("server", "add", "--uuid", s_dead, "--node", "dead")
    s_silent = str(uuid.uuid4())
    A.amber("server", "add", "--uuid", s_silent, "--node", "silent")
    with open(f"{A.data}/{s_page}/server.properties", "w") as f:
        f.write("motd=pages\n")
    with open(f"{A.data}/{s_big}/world.bin", "wb") as f:
        for _ in range(192):
            f.write(os.urandom(1 << 20))
    # Sparse files: the node estimates more than its disk has free (507). Phase 1 runs
    # without max_backup_size, which would otherwise cap the estimate.
    for i in range(4):
        with open(f"{A.data}/{s_sparse}/huge{i}.img", "wb") as f:
            f.truncate(1 << 42)

    full = key(A, ALL)
    u = Client(A, full)

    # ---- keys and authentication ----
    r = requests.get(f"{A.url}/api/client/servers/{s1}/backups", timeout=10)
    expect_err(r, 401, "InvalidCredentialsException", "no Authorization header: 401")
    check(r.headers.get("WWW-Authenticate") == "Bearer", "401 carries WWW-Authenticate: Bearer")
    for bad in ["ptlc_" + "x" * 43, full[:-1] + ("a" if full[-1] != "a" else "b"), "nonsense",
                "Basic " + full]:
        r = requests.get(f"{A.url}/api/client/servers/{s1}/backups",
                         headers={"Authorization": f"Bearer {bad}"}, timeout=10)
        expect_err(r, 401, "InvalidCredentialsException", f"bad key {bad[:12]}...: 401")
    revoked = key(A, ALL)
    A.amber("key", "revoke", revoked[:16])
    expect_err(Client(A, revoked).req("GET", f"/{s1}/backups"), 401,
               "InvalidCredentialsException", "revoked key: 401")
    r = Client(A, full, accept="application/json").req("GET", f"/{s1}/backups")
    check(r.status_code == 200, "Accept: application/json is accepted")
    r = u.req("GET", f"/{s1[:8]}/backups")
    check(r.status_code == 200 and r.json()["object"] == "list", "the short id names the server")
    r = u.req("GET", f"/{s1.upper()}/backups")
    check(r.status_code == 200, "an upper-case uuid names the server")
    expect_err(u.req("GET", f"/{uuid.uuid4()}/backups"), 404, "NotFoundHttpException",
               "unknown server: 404")
    expect_err(u.req("GET", "/not-a-server/backups"), 404, "NotFoundHttpException",
               "malformed server id: 404")
    scoped = Client(A, key(A, ALL, [s2]))
    expect_err(scoped.req("GET", f"/{s1}/backups"), 404, "NotFoundHttpException",
               "a key scoped to another server does not see this one: 404")
    check(scoped.req("GET", f"/{s2}/backups").status_code == 200,
          "a key scoped to the server reaches it")

    # ---- the seed flow on the local node ----
    before = f"{work}/s1-before"
    shutil.copytree(f"{A.data}/{s1}", before, symlinks=True)
    r = u.create(s1, name="Pre-maintenance backup", ignored="*.log\ncache/*\ntemp/*\n*.tmp")
    ok = check(r.status_code == 200 and r.json()["object"] == "backup", "create: 200 with the backup",
               r.text[:300])
    a = r.json()["attributes"] if ok else {}
    check(a.get("name") == "Pre-maintenance backup" and
          a.get("ignored_files") == ["*.log", "cache/*", "temp/*", "*.tmp"] and
          a.get("is_successful") is None and a.get("completed_at") is None and
          a.get("checksum") is None and a.get("bytes") == 0 and a.get("is_locked") is False and
          a.get("created_at", "").endswith("+00:00"),
          "create: attributes as seed 004 shows them", json.dumps(a)[:400])
    b1 = a.get("uuid", "")
    done = u.wait(s1, b1)
    check(done and done["is_successful"] is True and done["checksum"].startswith("sha1:") and
          len(done["checksum"]) == 45 and done["bytes"] > 0 and done["completed_at"] and
          "progress" not in done,
          "poll: completed, successful, sha1 checksum, size", json.dumps(done)[:400])
    stored = f"{A.store}/{b1}.tar.gz"
    check(os.path.exists(stored) and sha1_file(stored) == done["checksum"][5:],
          "the archive is in A's wings store and matches the checksum")
    r = u.req("GET", f"/{s1}/backups")
    lst = r.json()
    check(r.status_code == 200 and lst["meta"]["backup_count"] == 1 and
          lst["data"][0]["attributes"]["uuid"] == b1 and
          lst["meta"]["pagination"]["total"] == 1, "list shows it", r.text[:300])
    r = u.req("GET", f"/{s1}/backups/{b1}/download")
    url = r.json().get("attributes", {}).get("url", "") if r.status_code == 200 else ""
    check(r.status_code == 200 and r.json()["object"] == "signed_url" and
          url.startswith(A.url + "/download/backup?token="), "download: the node's signed URL",
          r.text[:300])
    dl = requests.get(url, timeout=30)
    check(dl.status_code == 200 and hashlib.sha1(dl.content).hexdigest() == done["checksum"][5:],
          "the signed URL serves the archive (sha1 matches)")
    with open(f"{work}/b1.tar.gz", "wb") as f:
        f.write(dl.content)
    t = subprocess.run(["tar", "-tzf", f"{work}/b1.tar.gz"], capture_output=True, text=True)
    names = [n[2:] if n.startswith("./") else n for n in t.stdout.split()]
    check(t.returncode == 0 and not any(n.endswith(".log") for n in names) and
          not any(n.startswith("cache/") and n != "cache/" for n in names),
          "GNU tar lists it, without the ignored files")
    ex = f"{work}/b1-extracted"
    os.makedirs(ex)
    with tarfile.open(f"{work}/b1.tar.gz", "r|gz") as tf:
        tf.extractall(ex, filter="tar") if hasattr(tarfile, "tar_filter") else tf.extractall(ex)
    same, why = compare(before, ex, "*.log", "cache", "*.tmp", "temp")
    check(same, "python tarfile extracts the tree the server had", why)
    check(requests.get(url, timeout=30).status_code == 404, "the URL is one-time: second use 404")

    check(u.req("POST", f"/{s1}/backups/{b1}/lock").status_code == 204, "lock: 204")
    check(u.get(s1, b1).json()["attributes"]["is_locked"] is True, "the backup is locked")
    expect_err(u.req("DELETE", f"/{s1}/backups/{b1}"), 400, "BackupIsLockedException",
               "delete of a locked backup: 400")
    check(os.path.exists(stored), "... and the archive is still there")
    check(u.req("POST", f"/{s1}/backups/{b1}/lock").status_code == 204 and
          u.get(s1, b1).json()["attributes"]["is_locked"] is False, "lock toggles back")
    u.req("POST", f"/{s1}/backups/{b1}/lock")
    check(u.req("POST", f"/{s1}/backups/{b1}/unlock").status_code == 204 and
          u.get(s1, b1).json()["attributes"]["is_locked"] is False, "unlock: 204, unlocked")
    check(u.req("POST", f"/{s1}/backups/{b1}/unlock").status_code == 204,
          "unlock of an unlocked backup: 204")

    # restore, truncating: the tree comes back as it was
    srv = f"{A.data}/{s1}"
    with open(f"{srv}/added-after-backup.txt", "w") as f:
        f.write("gone after a truncating restore\n")
    victim = next(n for n in sorted(names) if os.path.isfile(f"{srv}/{n}") and
                  not os.path.islink(f"{srv}/{n}") and n.endswith((".properties", ".json", ".txt")))
    os.remove(f"{srv}/{victim}")
    r = u.req("POST", f"/{s1}/backups/{b1}/restore", {"truncate": True})
    check(r.status_code == 202 and r.content == b"", "restore: 202, empty", r.text[:200])
    check(u.wait_restored(s1), "the server leaves restoring_backup when the node reports")
    same, why = compare(before, srv, "*.log", "cache", "*.tmp", "temp")
    check(same, "truncating restore: the server's tree is the backed-up one", why)
    # without truncate, files the backup does not have stay
    with open(f"{srv}/kept.txt", "w") as f:
        f.write("kept\n")
    r = u.req("POST", f"/{s1}/backups/{b1}/restore", {"truncate": False})
    check(r.status_code == 202 and u.wait_restored(s1) and os.path.exists(f"{srv}/kept.txt"),
          "restore with truncate false keeps other files")
    os.remove(f"{srv}/kept.txt")
    r = u.req("POST", f"/{s1}/backups/{b1}/restore", data="")
    check(r.status_code == 202 and u.wait_restored(s1), "restore without a body: 202 (truncate "
          "defaults to true)")
    check(db_rows(A.db, "SELECT state FROM servers WHERE uuid = ?", s1) == [(None,)],
          "the server has no state afterwards")

    check(u.req("DELETE", f"/{s1}/backups/{b1}").status_code == 204, "delete: 204")
    expect_err(u.get(s1, b1), 404, "NotFoundHttpException", "the deleted backup: 404")
    check(not os.path.exists(stored), "the archive is gone from the store")
    check(db_rows(A.db, "SELECT count(*) FROM backups WHERE uuid = ?", b1) == [(0,)],
          "and its record")

    # ---- two nodes behind one panel ----
    r = u.create(s2, name="on node B")
    b2 = r.json()["attributes"]["uuid"] if r.status_code == 200 else ""
    done2 = u.wait(s2, b2)
    check(r.status_code == 200 and done2 and done2["is_successful"] is True,
          "a server on node B: the backup completes (B reported to A)", r.text[:200])
    check(os.path.exists(f"{B.store}/{b2}.tar.gz") and not os.path.exists(f"{A.store}/{b2}.tar.gz"),
          "it landed in node B's store, not A's")
    r = u.req("GET", f"/{s2}/backups/{b2}/download")
    url2 = r.json()["attributes"]["url"] if r.status_code == 200 else ""
    check(url2.startswith(B.url + "/download/backup?token="), "its download URL is node B's")
    check(hashlib.sha1(requests.get(url2, timeout=30).content).hexdigest() == done2["checksum"][5:],
          "node B serves it")
    os.remove(f"{B.data}/{s2}/server.properties")
    check(u.req("POST", f"/{s2}/backups/{b2}/restore", {"truncate": True}).status_code == 202 and
          u.wait_restored(s2) and os.path.exists(f"{B.data}/{s2}/server.properties"),
          "restore on node B brings the file back")
    check(u.req("DELETE", f"/{s2}/backups/{b2}").status_code == 204 and
          not os.path.exists(f"{B.store}/{b2}.tar.gz"), "delete goes through node B")
    expect_err(u.get(s1, b2), 404, "NotFoundHttpException", "a backup of another server: 404")

    # ---- pagination ----
    made = []
    for i in range(5):
        r = u.create(s_page, name=f"page {i}")
        made.append(r.json()["attributes"]["uuid"])
        u.wait(s_page, made[-1])
    newest_first = list(reversed(made))
    seen = []
    for page in (1, 2, 3):
        r = u.req("GET", f"/{s_page}/backups?per_page=2&page={page}")
        p = r.json()["meta"]["pagination"]
        seen += [d["attributes"]["uuid"] for d in r.json()["data"]]
        links = p["links"]
        check(p["total"] == 5 and p["per_page"] == 2 and p["current_page"] == page and
              p["total_pages"] == 3 and p["count"] == (2 if page < 3 else 1) and
              ("next" in links) == (page < 3) and ("previous" in links) == (page > 1),
              f"page {page} of 3: pagination meta and links", json.dumps(p))
        if page == 1:
            nxt = requests.get(links["next"], headers=u.h, timeout=10)
            check(nxt.status_code == 200 and nxt.json()["meta"]["pagination"]["current_page"] == 2,
                  "the next link works as given")
    check(seen == newest_first, "pages list newest first, each backup once")
    r = u.req("GET", f"/{s_page}/backups?page=9")
    check(r.status_code == 200 and r.json()["data"] == [], "a page past the end is empty")
    r = u.req("GET", f"/{s_page}/backups?per_page=1000")
    check(r.json()["meta"]["pagination"]["per_page"] == 100, "per_page is capped at 100")
    check(u.req("GET", f"/{s_page}/backups").json()["meta"]["pagination"]["per_page"] == 20,
          "per_page defaults to 20")
    for q in ("page=abc", "page=0", "per_page=-1", "per_page=2x"):
        expect_err(u.req("GET", f"/{s_page}/backups?{q}"), 400, "ValidationException",
                   f"?{q}: 400")

    # ---- running backups: progress and conflicts ----
    r = u.create(s_big, name="big")
    bb = r.json()["attributes"]["uuid"]
    g = u.get(s_big, bb).json()["attributes"]
    prog = g.get("progress")
    check(g["completed_at"] is None and isinstance(prog, dict) and
          {"bytes_processed", "percent", "files"} <= set(prog),
          "while running, the details carry the node's progress", json.dumps(g)[:300])
    expect_err(u.create(s_big), 409, "ConflictingServerStateException",
               "create while a backup runs: 409")
    expect_err(u.req("DELETE", f"/{s_big}/backups/{bb}"), 409, "ConflictingServerStateException",
               "delete while it is being created: 409")
    expect_err(u.req("GET", f"/{s_big}/backups/{bb}/download"), 400,
               "BackupNotCompletedException", "download of a running backup: 400")
    expect_err(u.req("POST", f"/{s_big}/backups/{bb}/restore", {"truncate": True}), 400,
               "BackupNotCompletedException", "restore of a running backup: 400")
    check(u.wait(s_big, bb)["is_successful"] is True, "the big backup completes")
    # restoring: other changes wait
    check(u.req("POST", f"/{s_big}/backups/{bb}/restore", {"truncate": True}).status_code == 202,
          "restore of the big backup starts")
    expect_err(u.req("POST", f"/{s_big}/backups/{bb}/restore", {"truncate": True}), 409,
               "ConflictingServerStateException", "restore while restoring: 409")
    expect_err(u.create(s_big), 409, "ConflictingServerStateException",
               "create while restoring: 409")
    expect_err(u.req("DELETE", f"/{s_big}/backups/{bb}"), 409, "ConflictingServerStateException",
               "delete while restoring: 409")
    check(u.wait_restored(s_big), "the big restore finishes")

    # ---- many users at once: each request calls the node in this same daemon ----
    crowd = [A.new_server(A, limit=5) for _ in range(10)]
    answers = [None] * len(crowd)

    def create_one(i):
        answers[i] = u.create(crowd[i], name=f"crowd {i}")

    threads = [threading.Thread(target=create_one, args=(i,)) for i in range(len(crowd))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    check(all(a is not None and a.status_code == 200 for a in answers),
          "10 users creating at once are all answered 200",
          str([a.status_code if a is not None else None for a in answers]))
    for i, a in enumerate(answers):
        if a is not None and a.status_code == 200:
            u.wait(crowd[i], a.json()["attributes"]["uuid"])

    # ---- limits ----
    r = u.create(s_lim)
    u.wait(s_lim, r.json()["attributes"]["uuid"])
    expect_err(u.create(s_lim), 400, "TooManyBackupsException", "backup limit reached: 400")
    expect_err(u.create(s_zero), 400, "TooManyBackupsException", "a limit of 0 allows none: 400")

    # ---- bad bodies ----
    expect_err(u.req("POST", f"/{s1}/backups", data="{\"name\": "), 400, "BadRequestHttpException",
               "malformed JSON: 400")
    expect_err(u.req("POST", f"/{s1}/backups", data="[1]"), 400, "BadRequestHttpException",
               "a JSON array body: 400")
    expect_err(u.create(s1, name="x" * 192), 400, "ValidationException", "a 192-character name: 400")
    expect_err(u.create(s1, name=5), 400, "ValidationException", "a name that is not a string: 400")
    expect_err(u.create(s1, ignored=["*.log"]), 400, "ValidationException",
               "ignored that is not a string: 400")
    expect_err(u.create(s1, is_locked="maybe"), 400, "ValidationException",
               "is_locked that is not a boolean: 400")
    expect_err(u.req("POST", f"/{s1}/backups/{uuid.uuid4()}/restore", {"truncate": "x"}), 404,
               "NotFoundHttpException", "restore of an unknown backup: 404")
    r = u.req("POST", f"/{s1}/backups", data="name=x",
              headers={"Content-Type": "application/x-www-form-urlencoded"})
    check(r.status_code == 415, "a form body: 415")
    check(db_rows(A.db, "SELECT count(*) FROM backups WHERE server_uuid = ?", s1) == [(0,)],
          "no refused create left a record")
    r = u.create(s1, name="ü" * 191)
    check(r.status_code == 200, "191 characters (not bytes) is the limit", r.text[:200])
    u.wait(s1, r.json()["attributes"]["uuid"])
    r = u.create(s1, ignored="a.txt, b\\,c.txt\r\n\n  d/ ")
    check(r.status_code == 200 and
          r.json()["attributes"]["ignored_files"] == ["a.txt", "b\\,c.txt", "d/"],
          "ignored: lines and commas both separate patterns", r.text[:300])
    u.wait(s1, r.json()["attributes"]["uuid"])
    r = u.req("POST", f"/{s1}/backups", data="")
    check(r.status_code == 200 and r.json()["attributes"]["name"].startswith("Backup at "),
          "an empty body: default name 'Backup at ...'")
    u.wait(s1, r.json()["attributes"]["uuid"])

    # ---- nodes that fail ----
    r = u.create(s_dead)
    expect_err(r, 502, "DaemonConnectionException", "the server's node is down: 502")
    rid = r.headers.get("X-Request-Id", "")
    check(rid and rid in r.json()["errors"][0]["detail"], "the 502 names the request id",
          r.text[:300])
    check(db_rows(A.db, "SELECT count(*) FROM backups WHERE server_uuid = ?", s_dead) == [(0,)],
          "... and left no record")
    t0 = time.time()
    r = u.create(s_silent)
    expect_err(r, 504, "DaemonConnectionException", "the server's node never answers: 504")
    check(time.time() - t0 < 10, "the 504 comes after the configured node_timeout")
    check(db_rows(A.db, "SELECT count(*) FROM backups WHERE server_uuid = ?", s_silent) == [(0,)],
          "... and left no record")
    r = u.create(s_sparse)
    expect_err(r, 507, "InsufficientStorageException",
               "the node has less space than the estimated archive: 507")
    check("bytes" in r.json().get("errors", [{}])[0].get("detail", ""),
          "the 507 says how much is needed",
          r.text[:300])
    check(db_rows(A.db, "SELECT count(*) FROM backups WHERE server_uuid = ?", s_sparse) == [(0,)],
          "... and left no record")
    shutil.rmtree(f"{A.data}/{s_sparse}")
    os.makedirs(f"{A.data}/{s_sparse}")

    # ---- permissions per route ----
    routes = [
        ("backup.read", "GET", "/backups", None, 200),
        ("backup.read", "GET", "/backups/{b}", None, 200),
        ("backup.create", "POST", "/backups", {}, 200),
        ("backup.download", "GET", "/backups/{b}/download", None, 200),
        ("backup.delete", "POST", "/backups/{b}/lock", None, 204),
        ("backup.delete", "POST", "/backups/{b}/unlock", None, 204),
        ("backup.restore", "POST", "/backups/{b}/restore", {"truncate": False}, 202),
        ("backup.delete", "DELETE", "/backups/{d}", None, 204),
    ]
    s_perm = A.new_server(A, limit=20)
    r = u.create(s_perm)
    pb = r.json()["attributes"]["uuid"]
    u.wait(s_perm, pb)
    single = {p: Client(A, key(A, p)) for p in ALL.split(",")}
    r = u.create(s_perm)
    victim_b = r.json()["attributes"]["uuid"]
    u.wait(s_perm, victim_b)
    for perm, method, path, body, want in routes:
        p = "/" + s_perm + path.format(b=pb, d=victim_b)
        for other, c in single.items():
            if other != perm:
                expect_err(c.req(method, p, body), 403, "InsufficientPermissionsException",
                           f"{method} {path} with only {other}: 403")
        r = single[perm].req(method, p, body)
        check(r.status_code == want, f"{method} {path} with {perm}: {want}",
              f"{r.status_code} {r.text[:200]}")
        if path.endswith("/restore"):
            u.wait_restored(s_perm)
        if method == "POST" and path == "/backups" and r.status_code == 200:
            u.wait(s_perm, r.json()["attributes"]["uuid"])
    r = single["backup.create"].create(s_perm, is_locked=True)
    expect_err(r, 403, "InsufficientPermissionsException",
               "creating a locked backup needs backup.delete too: 403")
    check(single["backup.read"].req("GET", f"/{s_perm}").status_code == 200,
          "any key on the server reads its status")
finally:
    A.stop()
    B.stop()

# ---- phase 2: throttle and maximum size, with the panel restarted on new settings ----
A.write_config('throttle_limit = 2\nthrottle_period = "10m"\nmax_backup_size = "64KiB"')
try:
    if check(A.start() and B.start(), "panel A restarts with a throttle and a 64 KiB size cap"):
        s_thr = A.new_server(A, limit=20, demo=False)
        with open(f"{A.data}/{s_thr}/small.txt", "w") as f:
            f.write("small\n")
        ok_codes = []
        for i in range(2):
            r = u.create(s_thr)
            ok_codes.append(r.status_code)
            u.wait(s_thr, r.json()["attributes"]["uuid"])
        check(ok_codes == [200, 200], "two creations inside the window pass")
        r = u.create(s_thr)
        expect_err(r, 429, "TooManyRequestsHttpException", "the third within 10 minutes: 429")
        ra = r.headers.get("Retry-After", "")
        check(ra.isdigit() and 590 <= int(ra) <= 600, "429 carries Retry-After in seconds", ra)
        # a backup that grows past max_backup_size is stopped and marked failed
        s_max = A.new_server(A, limit=20)
        r = u.create(s_max, name="too big")
        bm = r.json()["attributes"]["uuid"]
        fm = u.wait(s_max, bm)
        check(fm and fm["is_successful"] is False and fm["completed_at"] and fm["bytes"] == 0 and
              "maximum backup size" in (fm.get("failure_reason") or ""),
              "past max_backup_size: failed, with the reason", json.dumps(fm)[:400])
        check(not os.path.exists(f"{A.store}/{bm}.tar.gz"), "nothing of it is stored")
        expect_err(u.req("GET", f"/{s_max}/backups/{bm}/download"), 400, "BackupFailedException",
                   "download of a failed backup: 400")
        expect_err(u.req("POST", f"/{s_max}/backups/{bm}/restore", {}), 400,
                   "BackupFailedException", "restore of a failed backup: 400")
        lst = u.req("GET", f"/{s_max}/backups").json()
        check(lst["meta"]["backup_count"] == lst["meta"]["pagination"]["total"] - 1,
              "a failed backup does not count in backup_count")
        check(u.req("DELETE", f"/{s_max}/backups/{bm}").status_code == 204,
              "a failed backup can be deleted")
finally:
    A.stop()
    B.stop()

# ---- phase 3: retention deletes old unlocked backups at start, never locked ones ----
rows = db_rows(A.db, "SELECT uuid, is_locked FROM backups WHERE server_uuid = ? AND state <> 'running'",
               s_page)
keep = rows[0][0]
con = sqlite3.connect(A.db)
with con:
    con.execute("UPDATE backups SET is_locked = 1 WHERE uuid = ?", (keep,))
    con.execute("UPDATE backups SET created_at = created_at - 7200 WHERE server_uuid = ?", (s_page,))
con.close()
A.write_config('throttle_limit = 0\nretention = "1h"')
with open(A.cfg) as f:
    cfg_text = f.read()
with open(A.cfg, "w") as f:
    f.write(cfg_text.replace("[node]\n", f'[node]\npublic_url = "http://localhost:{A.port}/"\n', 1))
try:
    if check(A.start() and B.start(), "panel A restarts with retention = 1h"):
        end = time.time() + 30
        while time.time() < end and len(db_rows(A.db, "SELECT uuid FROM backups WHERE server_uuid = ?",
                                                s_page)) > 1:
            time.sleep(0.2)
        left = db_rows(A.db, "SELECT uuid FROM backups WHERE server_uuid = ?", s_page)
        check(left == [(keep,)], "retention removed the old unlocked backups, kept the locked one",
              str(left))
        check(sorted(os.listdir(A.store)).count(f"{keep}.tar.gz") == 1 and
              not any(os.path.exists(f"{A.store}/{b}.tar.gz") for b in made if b != keep),
              "and their archives")

        r = u.req("GET", f"/{s_page}/backups/{keep}/download")
        check(r.status_code == 200 and r.json()["attributes"]["url"].startswith(
              f"http://localhost:{A.port}/download/backup?token="),
              "download links use [node] public_url", r.text[:200])

        # ---- the same flows from two more clients ----
        flow_server = A.new_server(A, limit=20)
        env = dict(os.environ, PANEL_URL=A.url, API_KEY=full, SERVER_ID=flow_server[:8],
                   SERVER_DIR=f"{A.data}/{flow_server}", COMPARE=COMPARE)
        for name, cmd in (("curl", ["bash", f"{SRC}/tests/integration/client_flow_curl.sh"]),
                          ("node fetch", ["node", f"{SRC}/tests/integration/client_flow_fetch.mjs"])):
            env["WORK"] = tempfile.mkdtemp(prefix="flow-", dir=work)
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
            sys.stdout.write("".join("    " + ln + "\n" for ln in p.stdout.splitlines()))
            check(p.returncode == 0, f"the seed flow through {name}", p.stderr[-600:])
finally:
    A.stop()
    B.stop()

# ---- phase 4: backups in adapters other than local disk ----
# "mem" (the SDK's memory example: presigns URLs) and "plain" (the adapter built against
# the oldest header: cannot presign), beside wings, in one adapter directory.
adapters4 = f"{work}/adapters4"
os.makedirs(adapters4)
for so in (f"{ADAPTERS}/wings.so", MEMORY_SO, OLD_SO):
    shutil.copy(so, adapters4)
    os.chmod(f"{adapters4}/{os.path.basename(so)}", 0o755)
ADAPTERS = P.adapters = adapters4
extra = '\n[adapters.mem]\ntype = "memory"\n[adapters.plain]\ntype = "old"\n'
for default, presigns in (("mem", True), ("plain", False)):
    A.write_config(f'throttle_limit = 0\ndefault_adapter = "{default}"')
    with open(A.cfg, "a") as f:
        f.write(extra)
    try:
        if not check(A.start(), f"panel A restarts with default_adapter = {default}"):
            continue
        s4 = A.new_server(A, limit=20)
        r = u.create(s4, name=f"in {default}")
        b4 = r.json()["attributes"]["uuid"] if r.status_code == 200 else ""
        d4 = u.wait(s4, b4)
        check(d4 and d4["is_successful"] is True and
              db_rows(A.db, "SELECT adapter FROM backups WHERE uuid = ?", b4) == [(default,)],
              f"a backup in '{default}' completes and records its instance")
        r = u.req("GET", f"/{s4}/backups/{b4}/download")
        if presigns:
            url4 = r.json().get("attributes", {}).get("url", "") if r.status_code == 200 else ""
            check(url4 and not url4.startswith(A.url) and s4 in url4,
                  "download: the adapter's presigned URL, not the node's", r.text[:300])
        else:
            expect_err(r, 400, "BadRequestHttpException",
                       "download from an adapter that cannot presign: 400")
        os.remove(f"{A.data}/{s4}/server.properties")
        check(u.req("POST", f"/{s4}/backups/{b4}/restore", {}).status_code == 202 and
              u.wait_restored(s4) and os.path.exists(f"{A.data}/{s4}/server.properties"),
              f"restore through the node from '{default}'")
        check(u.req("DELETE", f"/{s4}/backups/{b4}").status_code == 204, f"delete from '{default}'")
    finally:
        A.stop()

for d in (A, B):
    with open(f"{d.dir}/amberd.log") as f:
        log = f.read()
    check(d.token not in log, f"{d.name}: the node token never appears in its log")
    check(full[16:] not in log, f"{d.name}: the API key's secret never appears in its log")

print(f"client_api_e2e: {results['passed']} passed, {results['failed']} failed", flush=True)
if results["failed"] == 0:
    shutil.rmtree(work, ignore_errors=True)
else:
    print(f"(scratch kept in {work})")
sys.exit(1 if results["failed"] else 0)
