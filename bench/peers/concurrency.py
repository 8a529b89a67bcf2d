#!/usr/bin/env python3
"""Threads, thread pools and coroutines in Python: the peers of crew-bench's concurrency rows.

Settings: {"parts", "rounds", "threads", "calls", "items", "cpu_items", "cpu_steps", "cpu_rounds", "coroutines",
"sleepers", "pool_items", "io_calls"}, the values crew-bench's Crew side uses. Each figure is the median of
`rounds` after one untimed round. The gevent rows run in a child interpreter (gevent's monkey patching must not
touch the other rows), and each memory figure in a fresh interpreter of its own.
"""
import asyncio
import gc
import json
import multiprocessing as mp
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.dummy import Pool as DummyPool

import common


def square(x):
    return x * x


# Threads and thread pools.

def threads_round(n):
    cpu = common.CPUWindow([])
    t0 = time.perf_counter()
    for _ in range(n):
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
    return n / (time.perf_counter() - t0), cpu.micros_per(n)


def dummy_apply_rate(n):
    with DummyPool(2) as pool:
        t0 = time.perf_counter()
        results = [pool.apply_async(square, (i,)) for i in range(n)]
        total = sum(r.get() for r in results)
        rate = n / (time.perf_counter() - t0)
    assert total == sum(i * i for i in range(n))
    return rate


def executor_rate(n):
    with ThreadPoolExecutor(2) as ex:
        t0 = time.perf_counter()
        futures = [ex.submit(square, i) for i in range(n)]
        total = sum(f.result() for f in futures)
        rate = n / (time.perf_counter() - t0)
    assert total == sum(i * i for i in range(n))
    return rate


def dummy_map_rate(n):
    with DummyPool(2) as pool:
        items = list(range(n))
        t0 = time.perf_counter()
        out = pool.map(square, items)
        rate = n / (time.perf_counter() - t0)
    assert out[-1] == (n - 1) * (n - 1)
    return rate


def cpu_rate(threads, items, steps, rounds):
    jobs = [(i, steps) for i in range(items)]
    rates = []
    checksum = 0
    with DummyPool(threads) as pool:
        for _ in range(rounds):
            t0 = time.perf_counter()
            out = pool.map(common.burn, jobs, 1)
            rates.append(items / (time.perf_counter() - t0))
            checksum = sum(out) % (1 << 64)
    rates.sort()
    return rates[len(rates) // 2], checksum


# asyncio.

def asyncio_spawn_rate(n):
    async def trivial(i):
        return i

    async def main():
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(trivial(i)) for i in range(n)]
        values = await asyncio.gather(*tasks)
        rate = n / (time.perf_counter() - t0)
        assert sum(values) == n * (n - 1) // 2
        return rate
    return asyncio.run(main())


def asyncio_parked(n):
    """In a fresh interpreter: [resident bytes, heap bytes] added per task parked on an Event."""
    async def main():
        event = asyncio.Event()
        started = 0

        async def park():
            nonlocal started
            started += 1
            await event.wait()

        gc.collect()
        rss, heap = common.rss_bytes(), common.heap_bytes_in_use()
        tasks = [asyncio.create_task(park()) for _ in range(n)]
        while started < n:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        figures = [(common.rss_bytes() - rss) / n, (common.heap_bytes_in_use() - heap) / n]
        event.set()
        await asyncio.gather(*tasks)
        return figures
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
        t0 = time.perf_counter()
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

        await asyncio.gather(*[worker() for _ in range(100)])
        rate = n / (time.perf_counter() - t0)
        assert results[-1] == (n - 1) * 2
        return rate
    return asyncio.run(main())


# gevent (in a child interpreter, with the monkey patching).

def gevent_parked(n):
    """In a fresh interpreter: [resident bytes, heap bytes] added per greenlet parked on an Event."""
    from gevent import monkey
    monkey.patch_all()
    import gevent
    from gevent.event import Event

    event = Event()
    started = [0]

    def park():
        started[0] += 1
        event.wait()

    gc.collect()
    rss, heap = common.rss_bytes(), common.heap_bytes_in_use()
    parked = [gevent.spawn(park) for _ in range(n)]
    while started[0] < n:
        gevent.sleep(0.01)
    gevent.sleep(0.1)
    figures = [(common.rss_bytes() - rss) / n, (common.heap_bytes_in_use() - heap) / n]
    event.set()
    gevent.joinall(parked)
    return figures


def gevent_rows(s, parts, rounds):
    from gevent import monkey
    monkey.patch_all()
    import gevent
    from gevent.pool import Pool

    if "spawn" in parts:
        n = s["coroutines"]

        def spawn_rate():
            t0 = time.perf_counter()
            greenlets = [gevent.spawn(lambda i=i: i) for i in range(n)]
            gevent.joinall(greenlets)
            total = sum(g.value for g in greenlets)
            rate = n / (time.perf_counter() - t0)
            assert total == n * (n - 1) // 2
            return rate
        common.emit("spawn", "gevent", common.median_of(rounds, spawn_rate), "per s",
                    "gevent.spawn(f, i) each, gevent.joinall, then each value")
    if "sleep" in parts:
        def sleep_seconds():
            t0 = time.perf_counter()
            gevent.joinall([gevent.spawn(time.sleep, 0.1) for _ in range(s["sleepers"])])
            return time.perf_counter() - t0
        common.emit("sleep", "gevent", common.median_of(rounds, sleep_seconds), "s",
                    "gevent.spawn(time.sleep, 0.1) each (monkey-patched), gevent.joinall")
    if "pool" in parts:
        n = s["pool_items"]

        def pool_rate():
            t0 = time.perf_counter()
            pool = Pool(100)

            def work(i):
                gevent.sleep(0)  # Yields once, as an I/O wait would.
                return i * 2
            out = pool.map(work, range(n))
            rate = n / (time.perf_counter() - t0)
            assert out[-1] == (n - 1) * 2
            return rate
        common.emit("pool", "gevent", common.median_of(rounds, pool_rate), "items/s",
                    "gevent.pool.Pool(100).map(work, items), work yields with gevent.sleep(0)")


# Processes × coroutines: the seed's multiprocessing + gevent.

def run_chunk(calls):
    import gevent
    from gevent.pool import Pool
    return Pool(len(calls)).map(lambda ms: (gevent.sleep(ms / 1000), ms)[1], calls)


def mixed_seconds(n):
    chunks = [[10] * 100 for _ in range(n // 100)]
    with mp.Pool(2) as pool:
        pool.map(run_chunk, [[1, 1], [1, 1]], 1)  # Workers up.
        t0 = time.perf_counter()
        out = pool.map(run_chunk, chunks, 1)
        elapsed = time.perf_counter() - t0
    assert sum(len(c) for c in out) == n
    return elapsed


def fresh(kind, n):
    """Runs one memory measurement in a fresh interpreter; its [resident, heap] bytes per coroutine."""
    result = subprocess.run([sys.executable, os.path.abspath(__file__), json.dumps({"fresh": kind, "count": n})],
                            check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(result.stdout)


if __name__ == "__main__":
    common.ensure_venv()
    s = common.settings()
    if "fresh" in s:
        figures = asyncio_parked(s["count"]) if s["fresh"] == "asyncio" else gevent_parked(s["count"])
        print(json.dumps(figures))
        sys.exit(0)
    parts, rounds = set(s["parts"]), s["rounds"]
    if s.get("gevent"):
        gevent_rows(s, parts, rounds)
        sys.exit(0)
    common.emit_versions("gevent", "greenlet")
    if "threads" in parts:
        rate, cpu = common.median_row(rounds, lambda: threads_round(s["threads"]))
        common.emit("threads", "threading", rate, "threads/s", "threading.Thread(target=f): start(), join()", cpu)
    if "apply" in parts:
        common.emit("apply", "dummy.Pool", common.median_of(rounds, lambda: dummy_apply_rate(s["calls"])), "calls/s",
                    "multiprocessing.dummy.Pool(2): apply_async(square, (i,)) each, then get() of each")
        common.emit("apply", "ThreadPoolExecutor", common.median_of(rounds, lambda: executor_rate(s["calls"])),
                    "calls/s", "ThreadPoolExecutor(2): submit(square, i) each, then result() of each")
    if "map" in parts:
        n = s["items"]
        chunk, extra = divmod(n, 2 * 4)
        common.emit("map", "dummy.Pool", common.median_of(rounds, lambda: dummy_map_rate(n)), "items/s",
                    f"multiprocessing.dummy.Pool(2).map(square, items), chunksize automatic: "
                    f"{common.grouped(chunk + (1 if extra else 0))}")
    if "cpu" in parts:
        checksums = set()
        for threads in (1, 2):
            rate, checksum = cpu_rate(threads, s["cpu_items"], s["cpu_steps"], s["cpu_rounds"])
            checksums.add(checksum)
            common.emit("cpu", f"dummy.Pool({threads})", rate, "items/s",
                        f"multiprocessing.dummy.Pool({threads}).map(burn, items, 1)")
        assert len(checksums) == 1
        common.emit("cpu", "checksum", checksums.pop() % (1 << 52), "", "the sum of the results, mod 2^52")
    if "spawn" in parts:
        common.emit("spawn", "asyncio", common.median_of(rounds, lambda: asyncio_spawn_rate(s["coroutines"])), "per s",
                    "asyncio.create_task(f(i)) each, then asyncio.gather")
    if "memory" in parts:
        for kind, setup in (("asyncio", "asyncio.create_task(event.wait()) on an asyncio.Event"),
                            ("gevent", "gevent.spawn(event.wait) on a gevent.event.Event")):
            rss, heap = fresh(kind, s["coroutines"])
            common.emit("memory-rss", kind, rss / 1024, "KiB", setup + "; glibc's heap sees only Python's large "
                        "objects (small ones live in pymalloc's own mmap'd arenas)")
            common.emit("memory-heap", kind, heap / 1024, "KiB", setup + "; glibc's heap sees only Python's large "
                        "objects (small ones live in pymalloc's own mmap'd arenas)")
    if "sleep" in parts:
        common.emit("sleep", "asyncio", common.median_of(rounds, lambda: asyncio_sleep_seconds(s["sleepers"])), "s",
                    "asyncio.sleep(0.1) each, asyncio.gather")
    if "pool" in parts:
        common.emit("pool", "asyncio", common.median_of(rounds, lambda: asyncio_pool_rate(s["pool_items"])),
                    "items/s", "100 worker coroutines on an asyncio.Queue, each item awaits asyncio.sleep(0)")
    if "mixed" in parts:
        common.emit("mixed", "mp.Pool + gevent", common.median_of(rounds, lambda: mixed_seconds(s["io_calls"])), "s",
                    "multiprocessing.Pool(2).map(run_chunk, chunks of 100 calls, 1); each chunk runs in a "
                    "gevent.pool.Pool(100): 2 processes × 100 greenlets; the pool started before")
    if parts & {"spawn", "sleep", "pool"}:
        result = subprocess.run(
            [sys.executable, os.path.abspath(__file__), json.dumps(dict(s, gevent=True))],
            check=True, stdout=subprocess.PIPE, text=True,
        )
        sys.stdout.write(result.stdout)
        sys.stdout.flush()
