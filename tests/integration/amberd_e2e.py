#!/usr/bin/python3
"""End to end against a running amberd, over real HTTP.

amberd_e2e.py AMBERD AMBER ADAPTER_DIR SOURCE_DIR

Starts amberd (node API + remote API in one process, the all-in-one default) with the
wings adapter and a SQLite store, then plays the panel: registers a server with
`amber server add`, records a backup as the client API will (a row in the store), and
drives the node API exactly as a Pterodactyl panel does. Judges: sha1sum of the stored
archive, the store read with sqlite3, PyJWT-minted download tokens, compare_trees.py.
Prints one "ok"/"not ok" line per check and "amberd_e2e: N passed, M failed"."""
import concurrent.futures
import hashlib
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid

import jwt
import requests

AMBERD, AMBER, ADAPTERS, SRC = sys.argv[1:5]
# A shorter run with amberd under valgrind's memcheck: the same routes, smaller data,
# no SIGKILL; memcheck's verdict is amberd's exit code at SIGTERM.
VALGRIND = os.environ.get("AMBER_E2E_VALGRIND") == "1"
LAUNCH = (["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
           "--show-leak-kinds=definite,indirect", "--errors-for-leak-kinds=definite,indirect",
           AMBERD] if VALGRIND else [AMBERD])
from e2e_util import check, free_port, results  # noqa: E402


work = tempfile.mkdtemp(prefix="amber-e2e-")
port = free_port()
base = f"http://127.0.0.1:{port}"
token_id = secrets.token_hex(8)
token = secrets.token_hex(32)
server = str(uuid.uuid4())
data_dir = f"{work}/volumes"
store_dir = f"{work}/backups"
db = f"{work}/amber.db"
cfg = f"{work}/amber.toml"
os.makedirs(f"{data_dir}/{server}")
subprocess.run([sys.executable, f"{SRC}/scripts/make-demo-server.py", f"{data_dir}/{server}/"],
               check=True)
with open(f"{work}/token", "w") as f:
    f.write(token + "\n")
with open(cfg, "w") as f:
    f.write(f"""log_level = "info"
log_file = "{work}/amberd.log"
[node]
listen = "127.0.0.1:{port}"
token_id = "{token_id}"
token_file = "{work}/token"
data_dir = "{data_dir}"
state_dir = "{work}/state"
panel_url = "{base}"
[panel]
database = "sqlite:{db}"
[adapters.wings]
path = "{store_dir}"
[adapters.zwings]
type = "wings"
path = "{store_dir}-zstd"
compression = "zstd"
""")

proc = None


def start():
    global proc
    proc = subprocess.Popen(LAUNCH + ["--config", cfg, "--adapter-dir", ADAPTERS])
    for _ in range(600 if VALGRIND else 100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            if proc.poll() is not None:
                return False
            time.sleep(0.1)
    return False


def amber(*args):
    return subprocess.run([AMBER, "--config", cfg, "--adapter-dir", ADAPTERS, *args],
                          capture_output=True, text=True)


def node_auth():
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


def record_backup(b, adapter="wings"):
    """What the client API will do (issue 4): a running backup row in the store."""
    con = sqlite3.connect(db, timeout=10)
    with con:
        con.execute("INSERT INTO backups (uuid, server_uuid, name, adapter, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (b, server, f"e2e {b[:8]}", adapter, int(time.time())))
    con.close()


def backup_row(b):
    con = sqlite3.connect(db, timeout=10)
    con.row_factory = sqlite3.Row
    r = con.execute("SELECT * FROM backups WHERE uuid = ?", (b,)).fetchone()
    con.close()
    return r


def wait_row(b, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        r = backup_row(b)
        if r and r["state"] != "running":
            return r
        time.sleep(0.1)
    return backup_row(b)


def wait_job(path, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        r = requests.get(base + path, headers=node_auth(), timeout=10)
        if r.status_code == 200 and r.json().get("finished_at"):
            return r.json()
        time.sleep(0.1)
    return None


def sha1(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_token(b, unique=None, exp=None, key=None, adapter=None):
    now = int(time.time())
    claims = {"iss": base, "aud": [base], "jti": secrets.token_hex(16), "iat": now,
              "nbf": now - 300, "exp": exp if exp is not None else now + 900,
              "server_uuid": server, "backup_uuid": b,
              "unique_id": unique or secrets.token_hex(8), "user_id": 1}
    if adapter:
        claims["adapter"] = adapter
    return jwt.encode(claims, key or token, algorithm="HS256", headers={"jti": claims["jti"]})


try:
    check(start(), "amberd starts and listens", open(f"{work}/amberd.log").read()[-2000:]
          if os.path.exists(f"{work}/amberd.log") else "")
    r = amber("server", "add", "--uuid", server, "--node", "local")
    check(r.returncode == 0, "amber server add registers the server", r.stderr)

    # Auth, as Wings answers it.
    b1 = str(uuid.uuid4())
    r = requests.post(f"{base}/api/servers/{server}/backup", json={"adapter": "wings", "uuid": b1})
    check(r.status_code == 401 and "error" in r.json() and r.headers.get("X-Request-Id")
          and r.headers.get("WWW-Authenticate") == "Bearer",
          "node API without a token: 401 JSON with X-Request-Id and WWW-Authenticate", r.text)
    r = requests.post(f"{base}/api/servers/{server}/backup", json={"adapter": "wings", "uuid": b1},
                      headers={"Authorization": "Bearer wrong"})
    check(r.status_code == 403, "node API with a wrong token: 403", r.text)
    r = requests.post(f"{base}/api/servers/{server}/backup", json={"adapter": "wings", "uuid": "x"},
                      headers=node_auth())
    check(r.status_code == 400, "a backup uuid that is not a UUID: 400", r.text)
    r = requests.post(f"{base}/api/servers/{server}/backup", json={"adapter": "s4", "uuid": b1},
                      headers=node_auth())
    check(r.status_code == 400 and "wings" in r.text, "an unknown adapter: 400 naming wings", r.text)
    r = requests.post(f"{base}/api/servers/{uuid.uuid4()}/backup",
                      json={"adapter": "wings", "uuid": b1}, headers=node_auth())
    check(r.status_code == 404, "an unknown server: 404", r.text)
    r = requests.post(f"{base}/api/servers/{server}/backup", data="{", headers={
        **node_auth(), "Content-Type": "application/json"})
    check(r.status_code == 400, "malformed JSON: 400", r.text)

    # Create, as the panel does it; the node reports back through the remote API.
    record_backup(b1)
    r = requests.post(f"{base}/api/servers/{server}/backup",
                      json={"adapter": "wings", "uuid": b1, "ignore": "*.log\ncrash-reports/"},
                      headers=node_auth())
    check(r.status_code == 202, "create: 202", r.text)
    job = wait_job(f"/api/servers/{server}/backup/{b1}")
    check(job is not None and job.get("successful") is True, "the backup job finishes", str(job))
    row = wait_row(b1)
    archive = f"{store_dir}/{b1}.tar.gz"
    check(row is not None and row["state"] == "completed" and os.path.exists(archive)
          and row["checksum"] is not None and row["checksum"].split(":")[-1] == sha1(archive)
          and row["bytes"] == os.path.getsize(archive),
          "the store shows the backup completed with sha1sum and size of the stored file",
          str(dict(row) if row else None))
    r = subprocess.run(["tar", "-tzf", archive], capture_output=True, text=True)
    check(r.returncode == 0 and ".log" not in r.stdout and "server.properties" in r.stdout,
          "GNU tar reads it; ignored files are absent")

    # The remote API refuses what the panel refuses.
    rauth = {"Authorization": f"Bearer {token_id}.{token}", "Accept": "application/json"}
    r = requests.post(f"{base}/api/remote/backups/{b1}",
                      json={"successful": True, "checksum": "0" * 40, "checksum_type": "sha1",
                            "size": 1, "parts": None}, headers=rauth)
    check(r.status_code == 400 and "errors" in r.json(),
          "remote API: a second report for a completed backup is 400", r.text)
    r = requests.post(f"{base}/api/remote/backups/{b1}", json={"successful": False})
    check(r.status_code == 401 and r.json()["errors"][0]["code"] == "HttpException"
          and r.headers.get("WWW-Authenticate") == "Bearer", "remote API without a token: 401",
          r.text)
    r = requests.post(f"{base}/api/remote/backups/{b1}", json={"successful": False},
                      headers={"Authorization": "Bearer nodot"})
    check(r.status_code == 400, "remote API with a malformed token: 400", r.text)
    r = requests.post(f"{base}/api/remote/backups/{b1}", json={"successful": False},
                      headers={"Authorization": f"Bearer {token_id}.wrong"})
    check(r.status_code == 403, "remote API with a wrong token: 403", r.text)
    r = requests.post(f"{base}/api/remote/backups/{uuid.uuid4()}", json={"successful": False},
                      headers=rauth)
    check(r.status_code == 404, "remote API for an unknown backup: 404", r.text)

    # Signed download.
    tok = download_token(b1)
    r = requests.get(f"{base}/download/backup", params={"token": tok})
    check(r.status_code == 200 and hashlib.sha1(r.content).hexdigest() == sha1(archive),
          "signed download streams the stored bytes", str(r.status_code))
    r = requests.get(f"{base}/download/backup", params={"token": tok})
    check(r.status_code == 404, "a replayed download token: 404", r.text)
    r = requests.get(f"{base}/download/backup",
                     params={"token": download_token(b1, exp=int(time.time()) - 60)})
    check(r.status_code == 401, "an expired download token: 401", r.text)
    r = requests.get(f"{base}/download/backup", params={"token": download_token(b1, key="forged")})
    check(r.status_code == 403, "a forged download token: 403", r.text)
    r = requests.get(f"{base}/download/backup", params={"token": download_token(b1)},
                     headers={"Range": "bytes=0-99"})
    check(r.status_code == 206 and len(r.content) == 100, "a Range download: 206", str(r.status_code))

    # Restore with truncate: the stray file goes, the backup comes back.
    with open(f"{data_dir}/{server}/stray.txt", "w") as f:
        f.write("not in the backup")
    r = requests.post(f"{base}/api/servers/{server}/backup/{b1}/restore",
                      json={"adapter": "wings", "truncate_directory": True, "download_url": ""},
                      headers=node_auth())
    check(r.status_code == 202, "restore: 202", r.text)
    job = wait_job(f"/api/servers/{server}/backup/{b1}")
    check(job is not None and job.get("kind") == "restore" and job.get("successful") is True,
          "the restore job finishes", str(job))
    check(not os.path.exists(f"{data_dir}/{server}/stray.txt")
          and os.path.exists(f"{data_dir}/{server}/server.properties"),
          "truncate removed the stray file and the backup is back")

    # zstd: an instance with compression = "zstd" makes amberd's creates .tar.zst (under
    # the same key), downloads say so, and restore reads it back whole.
    snap = f"{work}/snapshot"
    subprocess.run(["cp", "-a", f"{data_dir}/{server}", snap], check=True)
    bz = str(uuid.uuid4())
    record_backup(bz, "zwings")
    r = requests.post(f"{base}/api/servers/{server}/backup",
                      json={"adapter": "zwings", "uuid": bz}, headers=node_auth())
    job = wait_job(f"/api/servers/{server}/backup/{bz}")
    row = wait_row(bz)
    zarchive = f"{store_dir}-zstd/{bz}.tar.gz"
    with open(zarchive, "rb") if os.path.exists(zarchive) else open(os.devnull, "rb") as f:
        magic = f.read(4)
    check(r.status_code == 202 and job is not None and job.get("successful") is True
          and magic == b"\x28\xb5\x2f\xfd" and row["state"] == "completed"
          and row["checksum"].split(":")[-1] == sha1(zarchive)
          and row["bytes"] == os.path.getsize(zarchive),
          "zstd instance: amberd stores a zstd archive, reported with its sha1 and size",
          f"{r.status_code} {job} {magic!r} {dict(row) if row else None}")
    t = subprocess.run(["zstd", "-q", "-t", zarchive], capture_output=True, text=True)
    g = subprocess.run(["tar", "-I", "zstd", "-tf", zarchive], capture_output=True, text=True)
    check(t.returncode == 0 and g.returncode == 0 and "server.properties" in g.stdout,
          "zstd -t and tar -I zstd accept amberd's zstd archive", t.stderr + g.stderr)
    r = requests.get(f"{base}/download/backup",
                     params={"token": download_token(bz, adapter="zwings")})
    check(r.status_code == 200 and hashlib.sha1(r.content).hexdigest() == sha1(zarchive)
          and r.headers.get("Content-Type") == "application/zstd"
          and f"{bz}.tar.zst" in r.headers.get("Content-Disposition", ""),
          "a zstd download is named .tar.zst, application/zstd",
          f"{r.status_code} {dict(r.headers)}")
    with open(f"{data_dir}/{server}/stray.txt", "w") as f:
        f.write("not in the backup")
    with open(f"{data_dir}/{server}/server.properties", "a") as f:
        f.write("changed=after the backup\n")
    r = requests.post(f"{base}/api/servers/{server}/backup/{bz}/restore",
                      json={"adapter": "zwings", "truncate_directory": True, "download_url": ""},
                      headers=node_auth())
    job = wait_job(f"/api/servers/{server}/backup/{bz}")
    cmp = subprocess.run([sys.executable, f"{SRC}/tests/tools/compare_trees.py", snap,
                          f"{data_dir}/{server}"], capture_output=True, text=True)
    check(r.status_code == 202 and job is not None and job.get("kind") == "restore"
          and job.get("successful") is True and cmp.returncode == 0,
          "restore of the zstd backup through amberd gives back the tree exactly",
          f"{r.status_code} {job} {cmp.stdout[-1500:]}")
    subprocess.run(["rm", "-rf", snap])

    # Concurrency: a second job for the same server is 409, and a burst of requests
    # from other clients is answered while backups run.
    b2 = str(uuid.uuid4())
    record_backup(b2)
    with open(f"{data_dir}/{server}/big.bin", "wb") as f:
        f.write(os.urandom((8 if VALGRIND else 96) << 20))
    r1 = requests.post(f"{base}/api/servers/{server}/backup",
                       json={"adapter": "wings", "uuid": b2}, headers=node_auth())
    r2 = requests.post(f"{base}/api/servers/{server}/backup",
                       json={"adapter": "wings", "uuid": str(uuid.uuid4())}, headers=node_auth())
    check(r1.status_code == 202 and r2.status_code == 409,
          "a second backup of a busy server: 409", f"{r1.status_code} {r2.status_code} {r2.text}")

    def poke(i):
        return requests.get(f"{base}/api/servers/{server}/backup/{b2}", headers=node_auth(),
                            timeout=30).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        codes = list(ex.map(poke, range(40 if VALGRIND else 400)))
    check(all(c == 200 for c in codes), f"{len(codes)} concurrent status requests during a "
          "backup: all 200",
          str({c: codes.count(c) for c in set(codes)}))
    row = wait_row(b2)
    check(row is not None and row["state"] == "completed", "the busy backup completes", str(row))

    # Delete.
    r = requests.delete(f"{base}/api/servers/{server}/backup/{b1}", headers=node_auth())
    check(r.status_code == 204 and not os.path.exists(archive), "delete: 204, file gone", r.text)
    r = requests.delete(f"{base}/api/servers/{server}/backup/{b1}", headers=node_auth())
    check(r.status_code == 404, "delete again: 404", r.text)

    # SIGHUP reopens the log file (after a rotation).
    os.rename(f"{work}/amberd.log", f"{work}/amberd.log.1")
    proc.send_signal(signal.SIGHUP)
    reopened = False
    for _ in range(100):
        requests.get(f"{base}/api/servers/{server}/backup/{b2}", headers=node_auth())
        if os.path.exists(f"{work}/amberd.log") and \
                "log reopened" in open(f"{work}/amberd.log").read():
            reopened = True
            break
        time.sleep(0.1)
    check(reopened, "SIGHUP: amberd writes to a new log file after a rotation")

    # SIGTERM drains: the running backup finishes and is reported before exit.
    b3 = str(uuid.uuid4())
    record_backup(b3)
    r = requests.post(f"{base}/api/servers/{server}/backup",
                      json={"adapter": "wings", "uuid": b3}, headers=node_auth())
    # Running, not just queued: a job still queued at SIGTERM is reported failed.
    for _ in range(300):
        st = requests.get(f"{base}/api/servers/{server}/backup/{b3}", headers=node_auth())
        if st.status_code == 200 and st.json().get("state") != "queued":
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=120)
    row = backup_row(b3)
    check(r.status_code == 202 and rc == 0 and row["state"] == "completed",
          "SIGTERM: the running backup finishes and is reported, exit 0",
          f"{r.status_code} rc={rc} {dict(row)}")

    if VALGRIND:
        raise SystemExit
    # SIGKILL mid-backup: after a restart the backup ends failed, nothing partial stays
    # under a final name, and the panel side knows.
    check(start(), "amberd starts again")
    b4 = str(uuid.uuid4())
    record_backup(b4)
    r = requests.post(f"{base}/api/servers/{server}/backup",
                      json={"adapter": "wings", "uuid": b4}, headers=node_auth())
    time.sleep(0.05)
    proc.kill()
    proc.wait()
    check(not os.path.exists(f"{store_dir}/{b4}.tar.gz") or backup_row(b4)["state"] == "completed",
          "SIGKILL: no partial archive under the final name")
    check(start(), "amberd starts after SIGKILL")
    row = wait_row(b4, timeout=30)
    check(row is not None and row["state"] in ("failed", "completed"),
          "the killed backup is reported (failed) after the restart", str(dict(row) if row else None))
except SystemExit:
    pass
finally:
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    if results["failed"] and os.path.exists(f"{work}/amberd.log"):
        print("--- amberd.log (tail)")
        print(open(f"{work}/amberd.log").read()[-4000:])
    subprocess.run(["rm", "-rf", work])

print(f"amberd_e2e: {results['passed']} passed, {results['failed']} failed")
sys.exit(1 if results["failed"] else 0)
