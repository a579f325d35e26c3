#!/usr/bin/env python3
"""compare_trees.py A B [--exclude GLOB]... [--no-mtime] [--no-mode]

Compares two directory trees entry by entry without following symlinks: type, file
content, permission bits, mtime (to the second), symlink targets, empty directories.
Prints every difference and exits 1 if there is any; prints "identical" otherwise."""
import argparse
import fnmatch
import hashlib
import os
import stat
import sys


def walk(root, excludes):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(dirnames + filenames):
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(name, g) for g in excludes):
                if name in dirnames:
                    dirnames.remove(name)
                continue
            out[rel] = os.lstat(os.path.join(root, rel))
    return out


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--exclude", action="append", default=[])
    ap.add_argument("--no-mtime", action="store_true")
    ap.add_argument("--no-mode", action="store_true")
    o = ap.parse_args()
    ta, tb = walk(o.a, o.exclude), walk(o.b, o.exclude)
    diffs = []
    for rel in sorted(set(ta) | set(tb)):
        if rel not in tb:
            diffs.append(f"only in {o.a}: {rel}")
            continue
        if rel not in ta:
            diffs.append(f"only in {o.b}: {rel}")
            continue
        sa, sb = ta[rel], tb[rel]
        if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
            diffs.append(f"{rel}: type differs")
            continue
        pa, pb = os.path.join(o.a, rel), os.path.join(o.b, rel)
        if stat.S_ISLNK(sa.st_mode):
            if os.readlink(pa) != os.readlink(pb):
                diffs.append(f"{rel}: symlink target {os.readlink(pa)!r} vs {os.readlink(pb)!r}")
            continue
        if not o.no_mode and stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
            diffs.append(f"{rel}: mode {stat.S_IMODE(sa.st_mode):o} vs {stat.S_IMODE(sb.st_mode):o}")
        if not o.no_mtime and int(sa.st_mtime) != int(sb.st_mtime):
            diffs.append(f"{rel}: mtime {int(sa.st_mtime)} vs {int(sb.st_mtime)}")
        if stat.S_ISREG(sa.st_mode):
            if sa.st_size != sb.st_size or digest(pa) != digest(pb):
                diffs.append(f"{rel}: content differs")
    for d in diffs:
        print(d)
    if diffs:
        return 1
    print(f"identical: {len(ta)} entries (files, directories, symlinks) compared")
    return 0


if __name__ == "__main__":
    sys.exit(main())
