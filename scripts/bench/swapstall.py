#!/usr/bin/env python3
"""What readers wait for while plugins are swapped on a large cache.

usage: scripts/bench/swapstall.py KPLUGFS WASM WORKDIR [--swaps N] [--blocks N]

Mounts WORKDIR/back on WORKDIR/mnt with a cache of --blocks 4 KiB blocks (default 262,144:
1 GiB), fills it by reading a file of that size, and loads WASM (an eviction policy) once.
Then one reader does random 4 KiB O_DIRECT reads of the file (every one a hit in the
daemon's cache), 3 s with no swap, then while WASM is written again --swaps times, 250 ms
apart (a module the mount has seen: the seen-before swap, with a replay of every resident
block into the new instance). Prints one JSON object: the reads' latency in each phase
(median, p99, p99.9, max, ms) and the swaps' close() (median, max, ms).

Bad input (a binary or module that is not there) is an error before anything is mounted;
the mount is unmounted and WORKDIR's files removed whatever happens.
"""
import argparse, json, os, random, shutil, subprocess, sys, threading, time


def pct(v, p):
    return v[min(len(v) - 1, int(len(v) * p))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kplugfs")
    ap.add_argument("wasm")
    ap.add_argument("workdir")
    ap.add_argument("--swaps", type=int, default=30)
    ap.add_argument("--blocks", type=int, default=262_144)
    a = ap.parse_args()
    for f in (a.kplugfs, a.wasm):
        if not os.path.isfile(f):
            sys.exit(f"swapstall: {f}: no such file")
    size = a.blocks * 4096
    back, mnt = os.path.join(a.workdir, "back"), os.path.join(a.workdir, "mnt")
    os.makedirs(back, exist_ok=True)
    os.makedirs(mnt, exist_ok=True)
    data = os.path.join(back, "f")
    with open(data, "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(size >> 20):
            f.write(chunk)
    daemon = subprocess.Popen(
        [a.kplugfs, "mount", back, mnt, "--cache-size", str(size), "--block-size", "4KiB", "--no-keep-plugins",
         "--no-kernel-cache", "--foreground"], stderr=subprocess.DEVNULL)
    fd = None
    try:
        for _ in range(200):
            if os.path.ismount(mnt):
                break
            if daemon.poll() is not None:
                sys.exit("swapstall: the mount failed")
            time.sleep(0.05)
        fd = os.open(os.path.join(mnt, "f"), os.O_RDONLY | os.O_DIRECT)
        for off in range(0, size, 1 << 20):
            os.pread(fd, 1 << 20, off)
        plugin = os.path.join(mnt, ".kplug", "plugins", os.path.basename(a.wasm))
        module = open(a.wasm, "rb").read()
        with open(plugin, "wb") as f:
            f.write(module)
        time.sleep(2)  # its optimized code
        lat, phase, stop = [], ["quiet"], threading.Event()

        def reader():
            r = random.Random(1)
            while not stop.is_set():
                o = r.randrange(a.blocks) * 4096
                t0 = time.perf_counter_ns()
                os.pread(fd, 4096, o)
                lat.append((phase[0], time.perf_counter_ns() - t0))

        th = threading.Thread(target=reader)
        th.start()
        time.sleep(3)
        phase[0] = "swaps"
        closes = []
        for _ in range(a.swaps):
            t0 = time.perf_counter_ns()
            with open(plugin, "wb") as f:
                f.write(module)
            closes.append((time.perf_counter_ns() - t0) / 1e6)
            time.sleep(0.25)
        phase[0] = "after"
        stop.set()
        th.join()
        status = json.load(open(os.path.join(mnt, ".kplug", "status")))
        out = {"blocks": a.blocks, "swap_count": a.swaps}
        for name in ("quiet", "swaps"):
            v = sorted(x / 1e6 for p, x in lat if p == name)
            out[name] = {"reads": len(v), "median": pct(v, 0.5), "p99": pct(v, 0.99),
                         "p999": pct(v, 0.999), "max": v[-1]}
        closes.sort()
        out["close_ms"] = {"median": closes[len(closes) // 2], "max": closes[-1]}
        failed = [p for p in status.get("plugins", []) if p.get("state") not in ("active",)]
        out["plugins_not_active"] = len(failed)
        print(json.dumps(out))
    finally:
        if fd is not None:
            os.close(fd)
        subprocess.run([a.kplugfs, "umount", mnt], stderr=subprocess.DEVNULL)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        shutil.rmtree(back, ignore_errors=True)


main()
