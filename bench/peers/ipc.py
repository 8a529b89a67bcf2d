#!/usr/bin/env python3
"""multiprocessing IPC workloads, the peers of crew-bench's ipc rows.

Prints JSON lines: {"workload": W, "variant": V, "value": X, "unit": U}.
Each workload runs one untimed round, then the median of `rounds` (crew-bench does the same).
"""
import json
import multiprocessing as mp
import os
import statistics
import sys
import time


def emit(workload, variant, value, unit):
    print(json.dumps({"workload": workload, "variant": variant, "value": value, "unit": unit}), flush=True)


def median_of(rounds, measure):
    values = [measure() for _ in range(rounds + 1)]
    return statistics.median(values[1:])


def produce(q, count, size):
    message = bytes([7]) * size
    for _ in range(count):
        q.put(message)


def queue_rate(count, size):
    q = mp.Queue()
    t0 = time.perf_counter()
    p = mp.Process(target=produce, args=(q, count, size))
    p.start()
    for _ in range(count):
        q.get()
    rate = count / (time.perf_counter() - t0)
    p.join()
    return rate


def produce_numbers(q, first, count):
    for value in range(first, first + count):
        q.put(value)


def consume_numbers(q, results):
    count = 0
    total = 0
    while True:
        value = q.get()
        if value == -1:
            results.put((count, total))
            return
        count += 1
        total += value


def queue_many_rate(count):
    q = mp.Queue(100_000)
    results = mp.Queue()
    t0 = time.perf_counter()
    consumers = [mp.Process(target=consume_numbers, args=(q, results)) for _ in range(2)]
    producers = [mp.Process(target=produce_numbers, args=(q, i * count, count)) for i in range(2)]
    for p in consumers + producers:
        p.start()
    for p in producers:
        p.join()
    q.put(-1)
    q.put(-1)
    got = [results.get() for _ in range(2)]
    for p in consumers:
        p.join()
    rate = 2 * count / (time.perf_counter() - t0)
    total = 2 * count
    assert sum(c for c, _ in got) == total and sum(s for _, s in got) == total * (total - 1) // 2
    return rate


def echo_pipe(conn, other):
    other.close()  # The parent's end, inherited by fork: closed so that the parent's close ends the loop.
    try:
        while True:
            conn.send_bytes(conn.recv_bytes())
    except EOFError:
        pass


def pipe_rate(pings):
    mine, theirs = mp.Pipe()
    p = mp.Process(target=echo_pipe, args=(theirs, mine))
    p.start()
    theirs.close()
    mine.send_bytes(b"\x01")
    mine.recv_bytes()
    t0 = time.perf_counter()
    for _ in range(pings):
        mine.send_bytes(b"\x01")
        mine.recv_bytes()
    micros = (time.perf_counter() - t0) / pings * 1e6
    mine.close()
    p.join()
    return micros


def echo_os_pipe(r, w, others):
    for fd in others:
        os.close(fd)
    while True:
        b = os.read(r, 1)
        if not b:
            return
        os.write(w, b)


def os_pipe_rate(pings):
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()
    p = mp.get_context("fork").Process(target=echo_os_pipe, args=(to_child_r, to_parent_w, (to_child_w, to_parent_r)))
    p.start()
    os.close(to_child_r)
    os.close(to_parent_w)
    t0 = time.perf_counter()
    for _ in range(pings):
        os.write(to_child_w, b"\x01")
        os.read(to_parent_r, 1)
    micros = (time.perf_counter() - t0) / pings * 1e6
    os.close(to_child_w)
    p.join()
    os.close(to_parent_r)
    return micros


def increment(counter, times):
    for _ in range(times):
        with counter.get_lock():
            counter.value += 1


def value_rate(times):
    counter = mp.Value("q", 0)
    t0 = time.perf_counter()
    workers = [mp.Process(target=increment, args=(counter, times)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    rate = 2 * times / (time.perf_counter() - t0)
    assert counter.value == 2 * times
    return rate


if __name__ == "__main__":
    # Arguments: "quick" or "full", then the parts to run (big many pipe queue value); all when none are named.
    quick = len(sys.argv) > 1 and sys.argv[1] == "quick"
    parts = set(sys.argv[2:]) or {"queue", "big", "many", "pipe", "value"}
    rounds = 1 if quick else 3
    if "queue" in parts:
        emit("queue", "mp.Queue", median_of(rounds, lambda: queue_rate(20_000 if quick else 100_000, 64)), "messages/s")
    if "big" in parts:
        count = 500 if quick else 2_000
        emit("queue_big", "mp.Queue", median_of(rounds, lambda: queue_rate(count, 65_536)) * 65_536 / 1e6, "MB/s")
    if "many" in parts:
        emit("queue_many", "mp.Queue", median_of(rounds, lambda: queue_many_rate(10_000 if quick else 50_000)), "messages/s")
    if "pipe" in parts:
        pings = 5_000 if quick else 20_000
        emit("pipe", "mp.Pipe", median_of(rounds, lambda: pipe_rate(pings)), "us")
        emit("pipe", "os.pipe", median_of(rounds, lambda: os_pipe_rate(pings)), "us")
    if "value" in parts:
        emit("value", "mp.Value", median_of(rounds, lambda: value_rate(20_000 if quick else 100_000)), "increments/s")
