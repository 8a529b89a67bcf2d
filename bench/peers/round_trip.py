#!/usr/bin/env python3
"""One call at a time through a pool of one worker process: the peer of crew-bench's round-trip rows.

Settings: {"calls": N, "rounds": R}. Each figure: microseconds per call, the median of R rounds after one untimed,
with the CPU time of the parent and the worker per call.
"""
import multiprocessing as mp
import time

import common


def echo(b):
    return b


def per_call(pool, n, call):
    worker = pool._pool[0].pid
    cpu = common.CPUWindow([worker])
    t0 = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - t0) / n * 1e6, cpu.micros_per(n)


if __name__ == "__main__":
    common.ensure_venv()
    s = common.settings()
    n, rounds = s["calls"], s["rounds"]
    common.emit_versions()
    with mp.Pool(1) as pool:
        for _ in range(100):
            pool.apply(echo, (1,))
        us, cpu = common.median_row(rounds, lambda: per_call(pool, n, lambda: pool.apply(echo, (1,))))
        common.emit("round_trip", "apply", us, "us", "multiprocessing.Pool(1): pool.apply(f, (1,))", cpu)
        us, cpu = common.median_row(rounds, lambda: per_call(pool, n, lambda: pool.apply_async(echo, (1,)).get()))
        common.emit("round_trip", "apply_async get", us, "us", "multiprocessing.Pool(1): pool.apply_async(f, (1,)).get()",
                    cpu)
