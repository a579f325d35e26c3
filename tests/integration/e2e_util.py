"""What the end-to-end scripts share: TAP-like check lines and their tally, free ports,
amberd daemons with their own directories, API keys, a client-API user, and judges."""
import hashlib
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import types
import uuid

import requests

# Set by setup(): the binaries, the adapter directory, the source tree, a scratch dir.
P = types.SimpleNamespace(amberd=None, amber=None, adapters=None, src=None, work=None)


def setup(amberd, amber, adapters, src, prefix):
    P.amberd, P.amber, P.adapters, P.src = amberd, amber, adapters, src
    P.work = tempfile.mkdtemp(prefix=prefix)
    return P.work

results = {"passed": 0, "failed": 0}


def check(ok, what, detail=""):
    results["passed" if ok else "failed"] += 1
    print(("ok - " if ok else "not ok - ") + what + ("" if ok or not detail else f": {detail}"),
          flush=True)
    return ok


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """One amberd with its own config, data and store directories."""

    def __init__(self, name, panel_url=None, panel_extra="", adapters_extra=""):
        self.name = name
        self.dir = f"{P.work}/{name}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token_id = secrets.token_hex(8)
        self.token = secrets.token_hex(32)
        self.data = f"{self.dir}/volumes"
        self.store = f"{self.dir}/backups"
        self.db = f"{self.dir}/amber.db"
        self.cfg = f"{self.dir}/amber.toml"
        self.panel_url = panel_url or self.url
        self.proc = None
        os.makedirs(self.data)
        with open(f"{self.dir}/token", "w") as f:
            f.write(self.token + "\n")
        self.adapters_extra = adapters_extra
        self.write_config(panel_extra)

    def write_config(self, panel_extra=""):
        with open(self.cfg, "w") as f:
            f.write(f"""log_level = "info"
log_file = "{self.dir}/amberd.log"
[node]
listen = "127.0.0.1:{self.port}"
token_id = "{self.token_id}"
token_file = "{self.dir}/token"
data_dir = "{self.data}"
state_dir = "{self.dir}/state"
panel_url = "{self.panel_url}"
[panel]
database = "sqlite:{self.db}"
node_timeout = "3s"
node_connect_timeout = "1s"
{panel_extra}
[adapters.wings]
path = "{self.store}"
{self.adapters_extra}
""")

    def start(self):
        # AMBER_E2E_VALGRIND_DIR=<dir>: every daemon runs under memcheck, one log per process
        # in <dir>; a by-hand check, too slow for the suite's timeouts.
        vg = os.environ.get("AMBER_E2E_VALGRIND_DIR")
        launch = (["valgrind", "--quiet", "--leak-check=full", "--errors-for-leak-kinds=definite",
                   "--show-leak-kinds=definite", f"--log-file={vg}/{self.name}.%p.log"]
                  if vg else [])
        self.proc = subprocess.Popen(launch + [P.amberd, "--config", self.cfg, "--adapter-dir",
                                               P.adapters])
        for _ in range(600 if vg else 100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                if self.proc.poll() is not None:
                    return False
                time.sleep(0.1)
        return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def amber(self, *args):
        return subprocess.run([P.amber, "--config", self.cfg, "--adapter-dir", P.adapters, *args],
                              capture_output=True, text=True)

    def new_server(self, panel, limit=None, node="local", demo=True):
        s = str(uuid.uuid4())
        os.makedirs(f"{self.data}/{s}")
        if demo:
            subprocess.run([sys.executable, f"{P.src}/scripts/make-demo-server.py",
                            f"{self.data}/{s}/"], check=True, stdout=subprocess.DEVNULL)
        args = ["server", "add", "--uuid", s, "--node", node]
        if limit is not None:
            args += ["--backup-limit", str(limit)]
        r = panel.amber(*args)
        assert r.returncode == 0, r.stderr
        return s


def key(panel, perms, servers=None):
    args = ["key", "create", "--permissions", perms, "--json"]
    if servers:
        for s in servers:
            args += ["--server", s]
    else:
        args.append("--all-servers")
    r = panel.amber(*args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["key"]


ALL = "backup.read,backup.create,backup.download,backup.delete,backup.restore"


class Client:
    """A user with a key, as in seed 004's python examples."""

    def __init__(self, panel, api_key, accept="Application/vnd.pterodactyl.v1+json"):
        self.base = panel.url + "/api/client/servers"
        self.h = {"Authorization": f"Bearer {api_key}", "Accept": accept,
                  "Content-Type": "application/json"}

    def req(self, method, path, body=None, headers=None, data=None):
        h = dict(self.h, **(headers or {}))
        return requests.request(method, self.base + path, headers=h, timeout=30,
                                json=body if data is None else None, data=data)

    def create(self, server, **body):
        return self.req("POST", f"/{server}/backups", body)

    def get(self, server, b):
        return self.req("GET", f"/{server}/backups/{b}")

    def wait(self, server, b, timeout=120):
        end = time.time() + timeout
        while time.time() < end:
            r = self.get(server, b)
            if r.status_code == 200 and r.json()["attributes"]["completed_at"]:
                return r.json()["attributes"]
            time.sleep(0.1)
        return self.get(server, b).json().get("attributes")

    def wait_restored(self, server, timeout=120):
        end = time.time() + timeout
        while time.time() < end:
            r = self.req("GET", f"/{server}")
            if r.status_code == 200 and r.json()["attributes"]["status"] is None:
                return True
            time.sleep(0.1)
        return False


def err(r):
    try:
        e = r.json()["errors"][0]
        return r.status_code, e["code"], e["status"]
    except Exception:  # noqa: BLE001 - a body that is not the error form is the failure
        return r.status_code, None, r.text[:200]


def expect_err(r, status, code, what):
    got = err(r)
    return check(got[0] == status and got[1] == code and got[2] == str(status), what,
                 f"got {got}, want ({status}, {code})")


def db_rows(db, sql, *args):
    con = sqlite3.connect(db, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def sha1_file(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def compare(a, b, *excludes):
    args = [sys.executable, f"{P.src}/tests/tools/compare_trees.py", a, b]
    for e in excludes:
        args += ["--exclude", e]
    r = subprocess.run(args, capture_output=True, text=True)
    return r.returncode == 0, (r.stdout + r.stderr)[-600:]
