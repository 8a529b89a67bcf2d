#!/usr/bin/env python3
"""multiprocessing.Pool workloads, the peers of crew-bench's pool rows.

Prints JSON lines: {"workload": W, "variant": V, "value": X, "unit": U}.
"""
import json
import multiprocessing as mp
import os
import signal
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def square(x):
    return x * x


def burn(rounds):
    x = 0
    for i in range(rounds * 100_000):
        x = (x * 6364136223846793005 + i) & 0xFFFFFFFFFFFFFFFF
    return x


def sleep_long(_):
    time.sleep(60)


def emit(workload, variant, value, unit):
    print(json.dumps({"workload": workload, "variant": variant, "value": value, "unit": unit}), flush=True)


# Each workload runs one untimed round first, then the median of `rounds` (crew-bench does the same).


def map_rate(n, rounds):
    with mp.Pool(2) as pool:
        pool.map(square, range(1000))
        rates = []
        for _ in range(rounds + 1):
            t0 = time.perf_counter()
            pool.map(square, range(n))
            rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates[1:])


def apply_async_rate(n, rounds):
    with mp.Pool(2) as pool:
        pool.apply(square, (1,))
        rates = []
        for _ in range(rounds + 1):
            t0 = time.perf_counter()
            results = [pool.apply_async(square, (i,)) for i in range(n)]
            for r in results:
                r.get()
            rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates[1:])


def executor_rate(n, rounds):
    with ProcessPoolExecutor(2) as ex:
        ex.submit(square, 1).result()
        rates = []
        for _ in range(rounds + 1):
            t0 = time.perf_counter()
            futures = [ex.submit(square, i) for i in range(n)]
            for f in futures:
                f.result()
            rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates[1:])


def imap_unordered_rate(n, rounds):
    with mp.Pool(2) as pool:
        list(pool.imap_unordered(square, range(100), 1))
        rates = []
        for _ in range(rounds + 1):
            t0 = time.perf_counter()
            for _ in pool.imap_unordered(square, range(n), 1):
                pass
            rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates[1:])


def cpu_seconds(workers, tasks, rounds):
    with mp.Pool(workers) as pool:
        pool.map(burn, [1] * workers, 1)
        t0 = time.perf_counter()
        pool.map(burn, [rounds] * tasks, 1)
        return time.perf_counter() - t0


def sigkill_latency(wait_seconds):
    """SIGKILL the worker running a call; how long until the caller learns of it (it never does)."""
    with mp.get_context("fork").Pool(1) as pool:
        pool.apply(square, (1,))
        result = pool.apply_async(sleep_long, (0,))
        time.sleep(0.3)
        pid = [p.pid for p in pool._pool][0]
        t0 = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        try:
            result.get(timeout=wait_seconds)
            return (time.perf_counter() - t0) * 1000
        except mp.TimeoutError:
            return None
        finally:
            pool.terminate()


if __name__ == "__main__":
    # Arguments: "quick" or "full", then the parts to run (map apply imap cpu kill); all when none are named.
    quick = len(sys.argv) > 1 and sys.argv[1] == "quick"
    parts = set(sys.argv[2:]) or {"map", "apply", "imap", "cpu", "kill"}
    rounds = 1 if quick else 5
    n = 5_000 if quick else 20_000
    if "map" in parts:
        emit("pool_map", "mp.Pool.map", map_rate(200_000 if quick else 1_000_000, rounds), "calls/s")
    if "apply" in parts:
        emit("apply_async", "mp.Pool", apply_async_rate(n, rounds), "calls/s")
        emit("apply_async", "ProcessPoolExecutor", executor_rate(n, rounds), "calls/s")
    if "imap" in parts:
        emit("imap_unordered", "mp.Pool", imap_unordered_rate(n, rounds), "calls/s")
    if "cpu" in parts:
        tasks, work = (4, 2) if quick else (8, 5)
        one = cpu_seconds(1, tasks, work)
        two = cpu_seconds(2, tasks, work)
        emit("cpu_scaling", "mp.Pool", one / two, "x")
    if "kill" in parts:
        latency = sigkill_latency(2 if quick else 5)
        emit("sigkill", "mp.Pool", latency if latency is not None else -1, "ms")
