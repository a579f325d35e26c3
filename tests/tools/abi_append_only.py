#!/usr/bin/env python3
"""Checks that the current adapter.h only appends to what the frozen release has.

For every struct of the ABI, the member lines of the frozen header must be the first
member lines of the current one, in the same order, and every #define value of the
frozen header must be unchanged."""
import re
import sys


def structs(text):
    out = {}
    for m in re.finditer(r"typedef struct (\w+) \{(.*?)\n\} \1;", text, re.S):
        body = re.sub(r"/\*.*?\*/", "", m.group(2), flags=re.S)
        members = [" ".join(l.split()) for l in body.split(";") if l.strip()]
        out[m.group(1)] = members
    return out


def defines(text):
    return dict(re.findall(r"^#define (AMBER_\w+)\s+([^\s/]+)", text, re.M))


def main():
    old, new = (open(p, encoding="utf-8").read() for p in sys.argv[1:3])
    bad = []
    so, sn = structs(old), structs(new)
    for name, members in so.items():
        cur = sn.get(name)
        if cur is None:
            bad.append(f"struct {name} was removed")
        elif cur[: len(members)] != members:
            bad.append(f"struct {name}: released members changed or reordered")
    dn = defines(new)
    for k, v in defines(old).items():
        if k in ("AMBER_ABI_MINOR",):
            continue
        if dn.get(k) != v:
            bad.append(f"#define {k} changed from {v} to {dn.get(k)}")
    for b in bad:
        print("ABI break:", b)
    print(f"abi: {len(so) - sum(1 for b in bad if b.startswith('struct'))} passed, {len(bad)} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
