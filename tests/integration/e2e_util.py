"""What the end-to-end scripts share: TAP-like check lines and their tally, free ports."""
import socket

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
