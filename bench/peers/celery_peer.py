#!/usr/bin/env python3
"""Celery 5 + Redis: the peer of crew-bench's durable-queue rows.

Installs what it needs when missing: Debian's redis-server (apt-get), and celery with redis-py in a venv under
.build/celery-venv (pip), then runs itself there. Starts its own redis-server on a Unix socket in a temporary
directory, starts a Celery worker, measures, and stops both. Prints JSON lines: {"workload", "variant", "value",
"unit"}.
"""
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

APP = '''
from celery import Celery
import os
app = Celery("bench", broker=os.environ["CREW_BENCH_REDIS"], backend=os.environ["CREW_BENCH_REDIS"])
app.conf.worker_prefetch_multiplier = 1
app.conf.broker_connection_retry_on_startup = True

@app.task
def trivial(x):
    return x
'''


def emit(workload, variant, value, unit):
    print(json.dumps({"workload": workload, "variant": variant, "value": value, "unit": unit}), flush=True)


def wait_for(path, timeout=10):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > deadline:
            raise RuntimeError(f"{path} did not appear")
        time.sleep(0.01)


def main():
    quick = len(sys.argv) > 1 and sys.argv[1] == "quick"
    concurrency = 2
    total = 1_000 if quick else 10_000
    work = tempfile.mkdtemp(prefix="crew-celery-")
    os.chmod(work, 0o700)
    sock = os.path.join(work, "redis.sock")
    redis = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        wait_for(sock)
        url = f"redis+socket://{sock}"
        env = dict(os.environ, CREW_BENCH_REDIS=url, PYTHONPATH=work)
        with open(os.path.join(work, "bench_app.py"), "w") as f:
            f.write(APP)
        sys.path.insert(0, work)
        os.environ["CREW_BENCH_REDIS"] = url
        import bench_app  # noqa: E402
        from celery import group  # noqa: E402

        # Enqueue, one at a time and in bulk, with no worker running.
        n = 1_000 if quick else 5_000
        t0 = time.perf_counter()
        for i in range(n):
            bench_app.trivial.apply_async((i,))
        emit("enqueue", "one at a time", n / (time.perf_counter() - t0), "tasks/s")
        t0 = time.perf_counter()
        group(bench_app.trivial.s(i) for i in range(n)).apply_async()
        emit("enqueue", "bulk (group)", n / (time.perf_counter() - t0), "tasks/s")
        bench_app.app.control.purge()

        def start_worker(pool, concurrency, prefetch=1):
            return subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "bench_app", "worker", "-P", pool, "-c", str(concurrency),
                 "--prefetch-multiplier", str(prefetch),
                 "-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )

        def end_to_end(label):
            # Enqueue `total`, wait for every result.
            t0 = time.perf_counter()
            results = [bench_app.trivial.apply_async((i,)) for i in range(total)]
            for r in results:
                r.get(timeout=600)
            emit("end_to_end", label, total / (time.perf_counter() - t0), "tasks/s")

        # Worker ready: from its start until it answers a task.
        t0 = time.perf_counter()
        worker = start_worker("prefork", concurrency)
        bench_app.trivial.apply_async((0,)).get(timeout=60)
        emit("worker", "ready", time.perf_counter() - t0, "s")

        # Round trips, one at a time.
        times = []
        for i in range(100 if quick else 500):
            t0 = time.perf_counter()
            bench_app.trivial.apply_async((i,)).get(timeout=60)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        emit("round_trip", "p50", statistics.median(times), "ms")
        emit("round_trip", "p99", times[int(len(times) * 0.99) - 1], "ms")

        end_to_end(f"prefork -c {concurrency}")

        # Graceful stop: SIGTERM until the worker has exited.
        t0 = time.perf_counter()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        emit("worker", "graceful stop", time.perf_counter() - t0, "s")
        worker = None

        # The same tasks on Celery's thread and gevent pools, 8 at once, and gevent 32 at once; then prefork and
        # gevent claiming ahead (Celery's default prefetch multiplier of 4, beside Crew's workers that do the same).
        for pool, n, prefetch in [("threads", 8, 1), ("gevent", 8, 1), ("gevent", 32, 1), ("prefork", 2, 4), ("gevent", 32, 4)]:
            worker = start_worker(pool, n, prefetch)
            bench_app.trivial.apply_async((0,)).get(timeout=60)
            end_to_end(f"{pool} -c {n}" + (f", prefetch {prefetch}" if prefetch > 1 else ""))
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
            worker = None
    finally:
        if worker is not None:
            worker.kill()
            worker.wait()
        redis.terminate()
        redis.wait()
        shutil.rmtree(work, ignore_errors=True)


def ensure_setup():
    """Installs redis-server and a venv with celery if missing; re-runs this script in the venv if needed."""
    if shutil.which("redis-server") is None:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server"],
                       check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    try:
        import celery  # noqa: F401
        import gevent  # noqa: F401
        import packaging  # noqa: F401
        import redis  # noqa: F401
        return
    except ImportError:
        pass
    venv = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".build", "celery-venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True, stdout=subprocess.DEVNULL)
    # kombu's redis transport imports `packaging` without declaring it.
    subprocess.run([python, "-m", "pip", "install", "-q", "celery>=5,<6", "redis", "packaging", "gevent"], check=True,
                   stdout=subprocess.DEVNULL)
    os.execv(python, [python, os.path.abspath(__file__)] + sys.argv[1:])


if __name__ == "__main__":
    ensure_setup()
    main()
