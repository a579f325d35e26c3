#!/usr/bin/env python3
"""Runs a TOML decoder over the toml-test suite, the way toml-test's own runner does.

The decoder gets each TOML document on stdin. For valid cases it must exit 0 and print
the tagged JSON encoding, which is compared semantically with the expected .json; for
invalid cases it must exit non-zero. Only the files listed in files-toml-<version> are
used.

    toml_test_run.py --decoder "amber config toml-decode" --suite /path/to/toml-test

The last line printed is "toml-test: N passed, M failed"; the exit status is 1 if any
case failed and 2 on usage errors.
"""

import argparse
import concurrent.futures
import fnmatch
import json
import math
import os
import re
import shlex
import subprocess
import sys

TIME_RE = r"(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
DATE_RE = r"(\d{4})-(\d{2})-(\d{2})"
DATETIME_PATTERNS = {
    "datetime": re.compile(r"^" + DATE_RE + r"[Tt ]" + TIME_RE + r"([Zz]|[+-]\d{2}:\d{2})$"),
    "datetime-local": re.compile(r"^" + DATE_RE + r"[Tt ]" + TIME_RE + r"$"),
    "date-local": re.compile(r"^" + DATE_RE + r"$"),
    "time-local": re.compile(r"^" + TIME_RE + r"$"),
}


def days_from_civil(y, m, d):
    """Days since 1970-01-01 in the proleptic Gregorian calendar."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def nanos(frac):
    # Precision beyond nanoseconds is truncated, as toml-test (Go's time package) does.
    return int((frac or "").ljust(9, "0")[:9])


def datetime_key(kind, text):
    """A value that is equal for equal date/times of one kind, or None if unparsable."""
    m = DATETIME_PATTERNS[kind].match(text)
    if not m:
        return None
    g = m.groups()
    if kind == "time-local":
        return (int(g[0]), int(g[1]), int(g[2]), nanos(g[3]))
    if kind == "date-local":
        return (int(g[0]), int(g[1]), int(g[2]))
    date = (int(g[0]), int(g[1]), int(g[2]))
    clock = (int(g[3]), int(g[4]), int(g[5]))
    if kind == "datetime-local":
        return date + clock + (nanos(g[6]),)
    # Offset date-times compare as instants: 12:00+01:00 equals 11:00Z.
    off = g[7]
    off_s = 0
    if off not in ("Z", "z"):
        off_s = (int(off[1:3]) * 60 + int(off[4:6])) * 60
        if off[0] == "-":
            off_s = -off_s
    secs = days_from_civil(*date) * 86400 + clock[0] * 3600 + clock[1] * 60 + clock[2]
    return (secs - off_s, nanos(g[6]))


def cmp_float(want, have):
    if want.endswith("nan") or have.endswith("nan"):
        if want.lstrip("+-") != have.lstrip("+-"):
            return f"want float {want!r}, have {have!r}"
        return None
    try:
        w, h = float(want), float(have)
    except ValueError:
        return f"want float {want!r}, have {have!r} (not a number)"
    if w != h and not (math.isinf(w) and math.isinf(h) and (w > 0) == (h > 0)):
        return f"want float {want!r}, have {have!r}"
    return None


def cmp_integer(want, have):
    try:
        if int(want, 10) == int(have, 10):
            return None
    except ValueError:
        pass
    return f"want integer {want!r}, have {have!r}"


def cmp_scalar(want, have):
    wt, ht = want["type"], have["type"]
    if wt != ht:
        return f"want type {wt!r}, have {ht!r} (value {have['value']!r})"
    wv, hv = want["value"], have["value"]
    if wt == "float":
        return cmp_float(wv, hv)
    if wt == "integer":
        return cmp_integer(wv, hv)
    if wt in DATETIME_PATTERNS:
        wk, hk = datetime_key(wt, wv), datetime_key(wt, hv)
        if wk is None or hk is None or wk != hk:
            return f"want {wt} {wv!r}, have {hv!r}"
        return None
    if wv != hv:
        return f"want {wt} {wv!r}, have {hv!r}"
    return None


def is_tagged(v):
    return (isinstance(v, dict) and len(v) == 2 and isinstance(v.get("type"), str)
            and isinstance(v.get("value"), str))


def describe(v):
    if is_tagged(v):
        return f"a {v['type']} value"
    if isinstance(v, dict):
        return "a table"
    if isinstance(v, list):
        return "an array"
    return f"JSON {type(v).__name__}"


def compare(want, have, path="<root>"):
    """None if equal, else a description of the first difference."""
    if isinstance(want, dict):
        if not isinstance(have, dict) or is_tagged(want) != is_tagged(have):
            return f"{path}: want {describe(want)}, have {describe(have)}"
        if is_tagged(want):
            why = cmp_scalar(want, have)
            return f"{path}: {why}" if why else None
        missing = sorted(set(want) - set(have))
        extra = sorted(set(have) - set(want))
        if missing:
            return f"{path}: missing key(s) {missing}"
        if extra:
            return f"{path}: unexpected key(s) {extra}"
        for k in want:
            why = compare(want[k], have[k], f"{path}.{k}" if path != "<root>" else k)
            if why:
                return why
        return None
    if isinstance(want, list):
        if not isinstance(have, list):
            return f"{path}: want an array, have {describe(have)}"
        if len(want) != len(have):
            return f"{path}: want array of {len(want)} elements, have {len(have)}"
        for i, (w, h) in enumerate(zip(want, have)):
            why = compare(w, h, f"{path}[{i}]")
            if why:
                return why
        return None
    return f"{path}: the expected JSON holds {describe(want)}, which toml-test never uses"


def run_decoder(argv, data, timeout):
    try:
        proc = subprocess.run(argv, input=data, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, b"", b"timed out"
    return proc.returncode, proc.stdout, proc.stderr


def clip(b, n=300):
    s = b.decode("utf-8", "replace").strip()
    return s if len(s) <= n else s[:n] + "..."


def run_case(argv, suite, name, timeout):
    """(name, None) on success, else (name, reason)."""
    with open(os.path.join(suite, name + ".toml"), "rb") as f:
        data = f.read()
    rc, out, err = run_decoder(argv, data, timeout)
    if rc is None:
        return name, f"decoder timed out after {timeout}s"
    if name.startswith("invalid/"):
        if rc == 0:
            return name, "decoder accepted invalid TOML; output: " + clip(out)
        return name, None
    if rc != 0:
        return name, f"decoder failed (exit {rc}) on valid TOML: " + clip(err)
    try:
        have = json.loads(out.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        return name, f"decoder output is not JSON ({e}): " + clip(out)
    with open(os.path.join(suite, name + ".json"), "rb") as f:
        want = json.loads(f.read().decode("utf-8"))
    why = compare(want, have)
    return name, why


def load_cases(suite, version):
    listing = os.path.join(suite, f"files-toml-{version}")
    with open(listing, encoding="utf-8") as f:
        files = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    # Each case is named once, by its .toml file; valid cases also have a .json.
    return sorted(f[:-5] for f in files if f.endswith(".toml"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decoder", required=True,
                    help="decoder command line (split like a shell would, not run by one)")
    ap.add_argument("--suite", required=True,
                    help="the toml-test tests directory (with valid/, invalid/ and "
                         "files-toml-*)")
    ap.add_argument("--toml", default="1.0.0", help="TOML version file list (default 1.0.0)")
    ap.add_argument("--run", action="append", default=[],
                    help="only cases matching this glob (e.g. 'valid/string/*'); repeatable")
    ap.add_argument("--skip", action="append", default=[],
                    help="skip cases matching this glob; repeatable")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per case")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    argv = shlex.split(args.decoder)
    if not argv:
        ap.error("--decoder is empty")
    try:
        cases = load_cases(args.suite, args.toml)
    except OSError as e:
        print(f"toml_test_run: {e}", file=sys.stderr)
        return 2
    if args.run:
        cases = [c for c in cases if any(fnmatch.fnmatchcase(c, g) for g in args.run)]
    cases = [c for c in cases if not any(fnmatch.fnmatchcase(c, g) for g in args.skip)]
    if not cases:
        print("toml_test_run: no test cases selected", file=sys.stderr)
        return 2

    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        futs = [ex.submit(run_case, argv, args.suite, c, args.timeout) for c in cases]
        for fut in concurrent.futures.as_completed(futs):
            try:
                name, why = fut.result()
            except OSError as e:
                print(f"toml_test_run: cannot run decoder: {e}", file=sys.stderr)
                return 2
            results[name] = why

    counts = {"valid": [0, 0], "invalid": [0, 0]}
    for name in cases:
        why = results[name]
        group = counts[name.split("/", 1)[0]]
        if why is None:
            group[0] += 1
        else:
            group[1] += 1
            print(f"FAIL {name}: {why}")
    passed = counts["valid"][0] + counts["invalid"][0]
    failed = counts["valid"][1] + counts["invalid"][1]
    print(f"  valid tests: {counts['valid'][0]} passed, {counts['valid'][1]} failed")
    print(f"invalid tests: {counts['invalid'][0]} passed, {counts['invalid'][1]} failed")
    print(f"toml-test: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
