#!/usr/bin/env python3
"""Writes a small, deterministic game-server directory for the demo: a world with
region files, configs, plugins, logs, an empty directory, a symlink and a unicode name."""
import os
import random
import sys

root = sys.argv[1]
rng = random.Random(20261123)


def write(rel, data, mode=0o644, mtime=1700000000):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    os.utime(path, (mtime, mtime))


def region(n):
    # Region files compress like real ones: runs of repeated chunk data plus noise.
    chunks = []
    for _ in range(n):
        block = bytes(rng.getrandbits(8) for _ in range(64))
        chunks.append(block * rng.randint(8, 64) + rng.randbytes(256))
    return b"".join(chunks)


write("server.properties", b"motd=Amber demo\nmax-players=20\nlevel-name=world\n")
write("eula.txt", b"eula=true\n")
write("start.sh", b"#!/bin/sh\nexec java -Xmx2G -jar server.jar nogui\n", 0o755)
write("server.jar", rng.randbytes(3 << 20))
for x in range(-2, 2):
    for z in range(-2, 2):
        write(f"world/region/r.{x}.{z}.mca", region(400), 0o600, 1700000000 + x * 10 + z)
write("world/level.dat", rng.randbytes(4096))
os.makedirs(os.path.join(root, "world/DIM-1/data"), exist_ok=True)
for i in range(200):
    write(f"plugins/Essentials/userdata/{i:04d}.yml", f"money: {i * 7}\nhome: [1, 64, {i}]\n".encode())
for name in ("WorldEdit", "LuckPerms", "Dynmap"):
    write(f"plugins/{name}.jar", rng.randbytes(256 << 10))
write("config/überwelt-spawn.yml", "spawn: {x: 0, y: 64, z: 0}\n".encode())
for day in range(5):
    write(f"logs/2026-11-{18 + day}-1.log", b"[Server thread/INFO]: tick\n" * 2000)
write("crash-reports/crash-2026-11-20.txt", b"java.lang.OutOfMemoryError\n")
os.symlink("world", os.path.join(root, "current-world"))
