#!/usr/bin/env python3
"""Process start + join of a child that runs a trivial function, per multiprocessing start method.

Prints one JSON line per method: {"workload": "process_start", "variant": METHOD, "value": MS, "unit": "ms"}
(the median over the runs).
"""
import json
import multiprocessing as mp
import statistics
import sys
import time


def trivial(x):
    return x * 2


def measure(method, runs):
    ctx = mp.get_context(method)
    # One warm-up start (forkserver starts its server on first use).
    p = ctx.Process(target=trivial, args=(1,))
    p.start()
    p.join()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = ctx.Process(target=trivial, args=(1,))
        p.start()
        p.join()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


if __name__ == "__main__":
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    for method, n in (("fork", runs), ("forkserver", runs), ("spawn", max(5, runs // 5))):
        print(json.dumps({"workload": "process_start", "variant": method, "value": measure(method, n), "unit": "ms"}),
              flush=True)
