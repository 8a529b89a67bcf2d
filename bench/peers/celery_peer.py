#!/usr/bin/env python3
"""Celery + Redis: the peer of crew-bench's durable-queue rows.

Settings: {"parts", "enqueue_one", "bulk", "round_trip", "warm_up", "end_to_end", "batch", "pools", "prefetch"},
the values crew-queue-bench gets for Crew's side. Installs Debian's redis-server when missing (apt-get), runs in
.build/bench-venv (requirements.txt), starts its own redis-server on a Unix socket in a private temporary directory,
starts one Celery worker at a time, measures, and stops both.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import common

APP = '''
from celery import Celery
import os
app = Celery("bench", broker=os.environ["CREW_BENCH_REDIS"], backend=os.environ["CREW_BENCH_REDIS"])
app.conf.worker_prefetch_multiplier = int(os.environ["CREW_BENCH_PREFETCH"])
app.conf.broker_connection_retry_on_startup = True

@app.task
def trivial(x):
    return x
'''

# Crew's pool kinds and Celery's twins.
CELERY_POOL = {"threads": "threads", "prefork": "prefork", "coroutines": "gevent"}


def wait_for(path, timeout=10):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > deadline:
            raise RuntimeError(f"{path} did not appear")
        time.sleep(0.01)


def percentile(values, p):
    """Nearest rank, as crew-queue-bench computes it."""
    rank = -(-p * len(values) // 100)
    return values[min(max(int(rank), 1), len(values)) - 1]


def main(s):
    parts = set(s["parts"])
    prefetch = s["prefetch"]
    work = tempfile.mkdtemp(prefix="crew-celery-")
    os.chmod(work, 0o700)
    sock = os.path.join(work, "redis.sock")
    redis = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        wait_for(sock)
        url = f"redis+socket://{sock}"
        env = dict(os.environ, CREW_BENCH_REDIS=url, CREW_BENCH_PREFETCH=str(prefetch), PYTHONPATH=work)
        with open(os.path.join(work, "bench_app.py"), "w") as f:
            f.write(APP)
        sys.path.insert(0, work)
        os.environ.update(CREW_BENCH_REDIS=url, CREW_BENCH_PREFETCH=str(prefetch))
        import bench_app  # noqa: E402
        from celery import group  # noqa: E402
        from celery.result import ResultSet  # noqa: E402
        trivial = bench_app.trivial
        on = "on Redis (a Unix socket, no persistence)"

        if "enqueue" in parts:
            # Enqueue, one at a time and in batches, with no worker running.
            n = s["enqueue_one"]
            t0 = time.perf_counter()
            for i in range(n):
                trivial.apply_async((i,))
            common.emit("queue.enqueue-one", "celery", n / (time.perf_counter() - t0), "tasks/s",
                        f"trivial.apply_async((i,)) one at a time, {on}; no worker running")
            bench_app.app.control.purge()
            for size, batches in s["bulk"]:
                t0 = time.perf_counter()
                for b in range(batches):
                    group(trivial.s(i) for i in range(b * size, (b + 1) * size)).apply_async()
                common.emit(f"queue.enqueue-bulk-{size}", "celery", size * batches / (time.perf_counter() - t0),
                            "tasks/s", f"group({size} signatures).apply_async() × {batches}, {on}; no worker running")
                bench_app.app.control.purge()

        def start_worker(pool, concurrency):
            return subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "bench_app", "worker", "-P", pool, "-c", str(concurrency),
                 "--prefetch-multiplier", str(prefetch),
                 "-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )

        for kind, concurrency in s["pools"]:
            concurrency = int(concurrency)
            pool = CELERY_POOL[kind]
            wanted = "e2e" in parts or (kind == "prefork" and "worker" in parts) or (
                kind == "threads" and "round-trip" in parts)
            if not wanted:
                continue
            setup = (f"1 worker process: celery worker -P {pool} -c {concurrency} --prefetch-multiplier {prefetch} "
                     f"--without-gossip --without-mingle --without-heartbeat, {on}")
            t0 = time.perf_counter()
            worker = start_worker(pool, concurrency)
            trivial.apply_async((0,)).get(timeout=60)
            ready = time.perf_counter() - t0
            if kind == "prefork" and "worker" in parts:
                common.emit("queue.ready", "celery", ready, "s", setup + "; from its start until it has answered one task")
            for _ in range(50):
                trivial.apply_async((0,)).get(timeout=60)

            if kind == "threads" and "round-trip" in parts:
                for i in range(s["warm_up"]):
                    trivial.apply_async((i,)).get(timeout=60)
                times = []
                for i in range(s["round_trip"]):
                    t0 = time.perf_counter()
                    trivial.apply_async((i,)).get(timeout=60)
                    times.append((time.perf_counter() - t0) * 1000)
                times.sort()
                for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)):
                    common.emit(f"queue.round-trip-{name}", "celery", percentile(times, p), "ms",
                                setup + "; trivial.apply_async((i,)).get(), one at a time")

            if "e2e" in parts:
                n = s["end_to_end"]
                for variant in ("one", "batch"):
                    t0 = time.perf_counter()
                    if variant == "one":
                        results = [trivial.apply_async((i,)) for i in range(n)]
                        how = "trivial.apply_async((i,)) one at a time"
                    else:
                        results = []
                        for first in range(0, n, s["batch"]):
                            g = group(trivial.s(i) for i in range(first, min(n, first + s["batch"]))).apply_async()
                            results.extend(g.results)
                        how = f"group({s['batch']} signatures).apply_async() per batch"
                    produced = time.perf_counter() - t0
                    values = ResultSet(results).get(timeout=600)
                    total = time.perf_counter() - t0
                    assert sum(values) == n * (n - 1) // 2
                    common.emit(f"queue.e2e.{kind}.{variant}", "celery", n / total, "tasks/s",
                                f"{setup}; {how}, then ResultSet(results).get() (join_native)",
                                details={"producer_s": produced, "drain_s": total - produced})

            # Graceful stop: SIGTERM until the worker has exited.
            t0 = time.perf_counter()
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
            if kind == "prefork" and "worker" in parts:
                common.emit("queue.stop", "celery", time.perf_counter() - t0, "s",
                            setup + "; SIGTERM until it has exited, idle")
            worker = None
    finally:
        if worker is not None:
            worker.kill()
            worker.wait()
        redis.terminate()
        redis.wait()
        shutil.rmtree(work, ignore_errors=True)


def ensure_redis():
    if shutil.which("redis-server") is None:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server"],
                       check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


if __name__ == "__main__":
    common.ensure_venv()
    settings = common.settings()
    ensure_redis()
    server = subprocess.run(["redis-server", "--version"], check=True, stdout=subprocess.PIPE, text=True).stdout
    version = next((w.split("=", 1)[1] for w in server.split() if w.startswith("v=")), server.strip())
    common.emit_versions("celery", "kombu", "redis", "billiard", "gevent", extra={"redis-server": version})
    main(settings)
