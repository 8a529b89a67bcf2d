#!/usr/bin/env python3
"""1-byte round trip between a parent and a child process: multiprocessing.Pipe and a raw os.pipe pair.

Prints one JSON line per variant: {"workload": "round_trip", "variant": V, "value": MICROSECONDS, "unit": "us"}
(the median of several rounds of N round trips each).
"""
import json
import multiprocessing as mp
import os
import statistics
import sys
import time


def mp_echo(conn):
    while True:
        data = conn.recv_bytes()
        if not data:
            break
        conn.send_bytes(data)


def mp_pipe(n):
    parent, child = mp.Pipe()
    p = mp.get_context("fork").Process(target=mp_echo, args=(child,))
    p.start()
    rounds = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            parent.send_bytes(b"x")
            parent.recv_bytes()
        rounds.append((time.perf_counter() - t0) / n * 1e6)
    parent.send_bytes(b"")
    p.join()
    return statistics.median(rounds)


def raw_pipe(n):
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w1)
        os.close(r2)
        while True:
            b = os.read(r1, 1)
            if not b or b == b"q":
                os._exit(0)
            os.write(w2, b)
    os.close(r1)
    os.close(w2)
    rounds = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            os.write(w1, b"x")
            os.read(r2, 1)
        rounds.append((time.perf_counter() - t0) / n * 1e6)
    os.write(w1, b"q")
    os.waitpid(pid, 0)
    return statistics.median(rounds)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    print(json.dumps({"workload": "round_trip", "variant": "mp.Pipe", "value": mp_pipe(n), "unit": "us"}), flush=True)
    print(json.dumps({"workload": "round_trip", "variant": "os.pipe", "value": raw_pipe(n), "unit": "us"}), flush=True)
