#!/usr/bin/env python3
"""Threads, thread pools and coroutines in Python: the peers of crew-bench's concurrency rows.

Prints JSON lines: {"workload": W, "variant": V, "value": X, "unit": U}. Each workload runs one untimed round,
then the median of `rounds` (crew-bench does the same). The gevent rows run in a child interpreter from a venv
this script makes with pip (gevent's monkey patching must not touch the other rows).
"""
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.dummy import Pool as DummyPool


def emit(workload, variant, value, unit):
    print(json.dumps({"workload": workload, "variant": variant, "value": value, "unit": unit}), flush=True)


def median_of(rounds, measure):
    values = [measure() for _ in range(rounds + 1)]
    return statistics.median(values[1:])


def square(x):
    return x * x


def burn(rounds):
    x = 0
    for i in range(rounds * 100_000):
        x = (x * 6364136223846793005 + i) & 0xFFFFFFFFFFFFFFFF
    return x


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# Threads and thread pools.

def threads_rate(n):
    t0 = time.perf_counter()
    for _ in range(n):
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
    return n / (time.perf_counter() - t0)


def dummy_apply_rate(n):
    with DummyPool(2) as pool:
        t0 = time.perf_counter()
        results = [pool.apply_async(square, (i,)) for i in range(n)]
        for r in results:
            r.get()
        return n / (time.perf_counter() - t0)


def executor_rate(n):
    with ThreadPoolExecutor(2) as ex:
        t0 = time.perf_counter()
        futures = [ex.submit(square, i) for i in range(n)]
        for f in futures:
            f.result()
        return n / (time.perf_counter() - t0)


def dummy_map_rate(n):
    with DummyPool(2) as pool:
        t0 = time.perf_counter()
        pool.map(square, range(n))
        return n / (time.perf_counter() - t0)


def cpu_threads_ratio(tasks, work):
    def seconds(n):
        with DummyPool(n) as pool:
            t0 = time.perf_counter()
            pool.map(burn, [work] * tasks, 1)
            return time.perf_counter() - t0
    return seconds(1) / seconds(2)


# asyncio.

def asyncio_spawn_rate(n):
    async def trivial(i):
        return i

    async def main():
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(trivial(i)) for i in range(n)]
        await asyncio.gather(*tasks)
        return n / (time.perf_counter() - t0)
    return asyncio.run(main())


def asyncio_memory_kib(n):
    async def main():
        event = asyncio.Event()
        gc.collect()
        before = rss_bytes()
        tasks = [asyncio.create_task(event.wait()) for _ in range(n)]
        await asyncio.sleep(0.3)
        after = rss_bytes()
        event.set()
        await asyncio.gather(*tasks)
        return (after - before) / n / 1024
    return asyncio.run(main())


def asyncio_sleep_seconds(n):
    async def main():
        t0 = time.perf_counter()
        await asyncio.gather(*[asyncio.sleep(0.1) for _ in range(n)])
        return time.perf_counter() - t0
    return asyncio.run(main())


def asyncio_pool_rate(n):
    """100 worker coroutines take items from a queue; each item's work yields once (as an I/O wait would)."""
    async def main():
        queue = asyncio.Queue()
        results = [None] * n
        for i in range(n):
            queue.put_nowait(i)
        for _ in range(100):
            queue.put_nowait(None)

        async def worker():
            while True:
                i = await queue.get()
                if i is None:
                    return
                await asyncio.sleep(0)
                results[i] = i * 2

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(100)])
        return n / (time.perf_counter() - t0)
    return asyncio.run(main())


# gevent (run in the venv's interpreter, with the monkey patching).

def gevent_rows(quick, parts, rounds):
    from gevent import monkey
    monkey.patch_all()
    import gevent
    from gevent.event import Event
    from gevent.pool import Pool

    coroutines = 20_000 if quick else 100_000
    if "spawn" in parts:
        def spawn_rate():
            t0 = time.perf_counter()
            gevent.joinall([gevent.spawn(square, i) for i in range(coroutines)])
            return coroutines / (time.perf_counter() - t0)
        emit("spawn", "gevent", median_of(rounds, spawn_rate), "per s")
    if "memory" in parts:
        def memory():
            event = Event()
            gc.collect()
            before = rss_bytes()
            parked = [gevent.spawn(event.wait) for _ in range(coroutines)]
            gevent.sleep(0.3)
            after = rss_bytes()
            event.set()
            gevent.joinall(parked)
            return (after - before) / coroutines / 1024
        emit("memory", "gevent", memory(), "KiB")
    if "sleep" in parts:
        sleepers = 2_000 if quick else 10_000
        def sleep_seconds():
            t0 = time.perf_counter()
            gevent.joinall([gevent.spawn(time.sleep, 0.1) for _ in range(sleepers)])
            return time.perf_counter() - t0
        emit("sleep", "gevent", median_of(rounds, sleep_seconds), "s")
    if "pool" in parts:
        items = 20_000 if quick else 100_000
        def pool_rate():
            pool = Pool(100)
            t0 = time.perf_counter()
            def work(i):
                gevent.sleep(0)  # Yields once, as an I/O wait would.
                return i * 2
            pool.map(work, range(items))
            return items / (time.perf_counter() - t0)
        emit("pool", "gevent", median_of(rounds, pool_rate), "items/s")


def venv_python():
    """The interpreter of a venv with gevent in it (made on first use, beside the build products)."""
    venv = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".build", "bench-venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True, stdout=subprocess.DEVNULL)
    check = subprocess.run([python, "-c", "import gevent"], stderr=subprocess.DEVNULL)
    if check.returncode != 0:
        subprocess.run([python, "-m", "pip", "install", "-q", "gevent"], check=True, stdout=subprocess.DEVNULL)
    return python


if __name__ == "__main__":
    # Arguments: "quick" or "full" (or "gevent-quick"/"gevent-full" in the venv), then the parts to run.
    mode = sys.argv[1] if len(sys.argv) > 1 else "full"
    parts = set(sys.argv[2:]) or {"threads", "apply", "map", "cpu", "spawn", "memory", "sleep", "pool", "mixed"}
    quick = mode.endswith("quick")
    rounds = 1 if quick else 3
    if mode.startswith("gevent-"):
        gevent_rows(quick, parts, rounds)
        sys.exit(0)
    if "threads" in parts:
        emit("threads", "threading", median_of(rounds, lambda: threads_rate(2_000 if quick else 10_000)), "threads/s")
    calls = 5_000 if quick else 20_000
    if "apply" in parts:
        emit("apply", "dummy.Pool", median_of(rounds, lambda: dummy_apply_rate(calls)), "calls/s")
        emit("apply", "ThreadPoolExecutor", median_of(rounds, lambda: executor_rate(calls)), "calls/s")
    if "map" in parts:
        emit("map", "dummy.Pool", median_of(rounds, lambda: dummy_map_rate(200_000 if quick else 1_000_000)), "items/s")
    if "cpu" in parts:
        emit("cpu", "threads", cpu_threads_ratio(4, 2) if quick else cpu_threads_ratio(8, 5), "x")
    coroutines = 20_000 if quick else 100_000
    if "spawn" in parts:
        emit("spawn", "asyncio", median_of(rounds, lambda: asyncio_spawn_rate(coroutines)), "per s")
    if "memory" in parts:
        emit("memory", "asyncio", asyncio_memory_kib(coroutines), "KiB")
    if "sleep" in parts:
        emit("sleep", "asyncio", median_of(rounds, lambda: asyncio_sleep_seconds(2_000 if quick else 10_000)), "s")
    if "pool" in parts:
        emit("pool", "asyncio", median_of(rounds, lambda: asyncio_pool_rate(20_000 if quick else 100_000)), "items/s")
    gevent_parts = parts & {"spawn", "memory", "sleep", "pool"}
    if gevent_parts:
        python = venv_python()
        result = subprocess.run(
            [python, os.path.abspath(__file__), "gevent-" + ("quick" if quick else "full")] + sorted(gevent_parts),
            check=True, stdout=subprocess.PIPE, text=True,
        )
        sys.stdout.write(result.stdout)
        sys.stdout.flush()
