#!/usr/bin/env python3
"""multiprocessing.Pool and ProcessPoolExecutor: the peers of crew-bench's pool rows.

Settings: {"parts", "rounds", "map", "calls", "cpu_items", "cpu_steps", "kill_wait_s"}, the values crew-bench's
Crew side uses. Each figure is the median of `rounds` after one untimed round, with the CPU time of the parent and
the two workers per call where it says so.
"""
import multiprocessing as mp
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor

import common


def square(x):
    return x * x


def crash(_):
    """Dies at once, as a trap does (SIGILL)."""
    os.kill(os.getpid(), signal.SIGILL)


def percentile(values, p):
    """Nearest rank, as crew-bench computes it."""
    rank = -(-p * len(values) // 100)
    return values[min(max(int(rank), 1), len(values)) - 1]


def trap_latencies(n):
    """A call whose worker dies: ProcessPoolExecutor reports it (and breaks, so each round needs a new one)."""
    from concurrent.futures.process import BrokenProcessPool
    times = []
    for _ in range(n):
        with ProcessPoolExecutor(1) as ex:
            ex.submit(square, 2).result()
            t0 = time.perf_counter()
            try:
                ex.submit(crash, 0).result()
                raise RuntimeError("a call that crashes returned")
            except BrokenProcessPool:
                times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return percentile(times, 50), percentile(times, 99)


def sleep_long(_):
    time.sleep(60)


def pids(pool):
    return [p.pid for p in pool._pool]


def map_round(pool, n):
    items = list(range(n))
    cpu = common.CPUWindow(pids(pool))
    t0 = time.perf_counter()
    out = pool.map(square, items)
    rate = n / (time.perf_counter() - t0)
    assert len(out) == n and out[-1] == (n - 1) * (n - 1)
    return rate, cpu.micros_per(n)


def apply_round(pool, n):
    cpu = common.CPUWindow(pids(pool))
    t0 = time.perf_counter()
    results = [pool.apply_async(square, (i,)) for i in range(n)]
    for r in results:
        r.get()
    return n / (time.perf_counter() - t0), cpu.micros_per(n)


def executor_round(ex, n):
    cpu = common.CPUWindow(list(ex._processes))
    t0 = time.perf_counter()
    futures = [ex.submit(square, i) for i in range(n)]
    for f in futures:
        f.result()
    return n / (time.perf_counter() - t0), cpu.micros_per(n)


def imap_round(pool, n):
    cpu = common.CPUWindow(pids(pool))
    t0 = time.perf_counter()
    count = sum(1 for _ in pool.imap_unordered(square, range(n), 1))
    assert count == n
    return n / (time.perf_counter() - t0), cpu.micros_per(n)


def cpu_rate(processes, items, steps, rounds):
    jobs = [(i, steps) for i in range(items)]
    checksum = 0
    with mp.Pool(processes) as pool:
        pool.map(common.burn, [(i, 1000) for i in range(processes)], 1)
        rates = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            out = pool.map(common.burn, jobs, 1)
            rates.append(items / (time.perf_counter() - t0))
            checksum = sum(out) % (1 << 64)
    rates.sort()
    return rates[len(rates) // 2], checksum


def sigkill_latency(wait_seconds):
    """SIGKILL the worker running a call; how long until the caller learns of it (it never does)."""
    with mp.Pool(1) as pool:
        pool.apply(square, (1,))
        result = pool.apply_async(sleep_long, (0,))
        time.sleep(0.3)
        t0 = time.perf_counter()
        os.kill(pids(pool)[0], signal.SIGKILL)
        try:
            result.get(timeout=wait_seconds)
            return (time.perf_counter() - t0) * 1000
        except mp.TimeoutError:
            return None
        finally:
            pool.terminate()


if __name__ == "__main__":
    common.ensure_venv()
    s = common.settings()
    parts, rounds = set(s["parts"]), s["rounds"]
    common.emit_versions()
    warm = "the pool's 2 workers started and warm before"
    if parts & {"map", "apply", "imap"}:
        with mp.Pool(2) as pool:
            pool.map(square, range(1000))
            if "map" in parts:
                n = s["map"]
                chunk, extra = divmod(n, 2 * 4)
                rate, cpu = common.median_row(rounds, lambda: map_round(pool, n))
                common.emit("pool.map", "mp.Pool", rate, "calls/s",
                            f"multiprocessing.Pool(2).map(square, items), chunksize automatic: "
                            f"{common.grouped(chunk + (1 if extra else 0))}", cpu)
            if "apply" in parts:
                rate, cpu = common.median_row(rounds, lambda: apply_round(pool, s["calls"]))
                common.emit("pool.apply", "mp.Pool", rate, "calls/s",
                            "multiprocessing.Pool(2): apply_async(square, (i,)) each, then get() of each", cpu)
            if "imap" in parts:
                rate, cpu = common.median_row(rounds, lambda: imap_round(pool, s["calls"]))
                common.emit("pool.imap", "mp.Pool", rate, "calls/s",
                            "multiprocessing.Pool(2).imap_unordered(square, items, 1)", cpu)
    if "apply" in parts:
        with ProcessPoolExecutor(2) as ex:
            for f in [ex.submit(square, i) for i in range(1000)]:
                f.result()
            rate, cpu = common.median_row(rounds, lambda: executor_round(ex, s["calls"]))
            common.emit("pool.apply", "ProcessPoolExecutor", rate, "calls/s",
                        "ProcessPoolExecutor(2): submit(square, i) each, then result() of each", cpu)
    if "cpu" in parts:
        checksums = set()
        for processes in (1, 2):
            rate, checksum = cpu_rate(processes, s["cpu_items"], s["cpu_steps"], s["cpu_rounds"])
            checksums.add(checksum)
            common.emit("pool.cpu", f"mp.Pool({processes})", rate, "items/s",
                        f"multiprocessing.Pool({processes}).map(burn, items, 1)")
        assert len(checksums) == 1
        common.emit("pool.cpu", "checksum", checksums.pop() % (1 << 52), "", "the sum of the results, mod 2^52")
    if "trap" in parts:
        p50, p99 = trap_latencies(s["traps"])
        setup = ("ProcessPoolExecutor(1), a new one each time (a dead worker breaks the executor): the call kills its "
                 f"worker with SIGILL; workers started by {mp.get_start_method()}")
        common.emit("pool.trap", "ProcessPoolExecutor p50", p50, "ms", setup)
        common.emit("pool.trap", "ProcessPoolExecutor p99", p99, "ms", setup)
        common.emit("pool.trap", "mp.Pool", -1, "ms", "multiprocessing.Pool: the caller is never told (it waits forever)")
    if "kill" in parts:
        latency = sigkill_latency(s["kill_wait_s"])
        common.emit("pool.kill", "mp.Pool", latency if latency is not None else -1, "ms",
                    f"multiprocessing.Pool(1), a call sleeping 60 s; the caller waits get(timeout={s['kill_wait_s']}) "
                    "and never hears of the death" if latency is None else "multiprocessing.Pool(1)")
