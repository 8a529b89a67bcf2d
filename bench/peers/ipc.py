#!/usr/bin/env python3
"""multiprocessing's queues, pipes and shared values: the peers of crew-bench's ipc rows.

Settings: {"parts", "rounds", "small", "big", "many", "pings", "increments"}, the values crew-bench's Crew side
uses. As there, the children are started before the timed window and wait at a barrier; the window closes when the
parent has the last message (or the children's reports), while the children are still alive so that their CPU
time can be read. Each figure is the median of `rounds` after one untimed round.
"""
import multiprocessing as mp
import os
import time

import common


def produce(q, count, size, start, done):
    message = bytes([7]) * size
    start.wait()
    for _ in range(count):
        q.put(message)
    done.wait()


def queue_round(count, size):
    q = mp.Queue()
    start = mp.Barrier(2)
    done = mp.Event()
    p = mp.Process(target=produce, args=(q, count, size, start, done))
    p.start()
    start.wait()
    cpu = common.CPUWindow([p.pid])
    t0 = time.perf_counter()
    last = None
    for _ in range(count):
        last = q.get()
    rate = count / (time.perf_counter() - t0)
    cpu_per = cpu.micros_per(count)
    done.set()
    p.join()
    assert len(last) == size and last[0] == 7
    return rate, cpu_per


def produce_numbers(q, first, count, start, done):
    start.wait()
    for value in range(first, first + count):
        q.put(value)
    q.put(-1)
    done.wait()


def consume_numbers(q, results, start, done):
    start.wait()
    count = 0
    total = 0
    while True:
        value = q.get()
        if value == -1:
            break
        count += 1
        total += value
    results.put((count, total))
    done.wait()


def many_round(count):
    q = mp.Queue(100_000)
    results = mp.SimpleQueue()
    start = mp.Barrier(5)
    done = mp.Event()
    consumers = [mp.Process(target=consume_numbers, args=(q, results, start, done)) for _ in range(2)]
    producers = [mp.Process(target=produce_numbers, args=(q, i * count, count, start, done)) for i in range(2)]
    for p in consumers + producers:
        p.start()
    start.wait()
    cpu = common.CPUWindow([p.pid for p in consumers + producers])
    t0 = time.perf_counter()
    got = [results.get() for _ in range(2)]
    rate = 2 * count / (time.perf_counter() - t0)
    cpu_per = cpu.micros_per(2 * count)
    done.set()
    for p in consumers + producers:
        p.join()
    total = 2 * count
    assert sum(c for c, _ in got) == total and sum(s for _, s in got) == total * (total - 1) // 2
    return rate, cpu_per


def echo_pipe(conn, other, start):
    other.close()  # The parent's end, inherited by fork: closed so that the parent's close ends the loop.
    start.wait()
    try:
        while True:
            conn.send_bytes(conn.recv_bytes())
    except EOFError:
        pass


def pipe_round(pings):
    mine, theirs = mp.Pipe()
    start = mp.Barrier(2)
    p = mp.Process(target=echo_pipe, args=(theirs, mine, start))
    p.start()
    theirs.close()
    start.wait()
    cpu = common.CPUWindow([p.pid])
    t0 = time.perf_counter()
    for _ in range(pings):
        mine.send_bytes(b"\x01")
        mine.recv_bytes()
    micros = (time.perf_counter() - t0) / pings * 1e6
    cpu_per = cpu.micros_per(pings)
    mine.close()
    p.join()
    return micros, cpu_per


def increment(counter, times, results, start, done):
    start.wait()
    for _ in range(times):
        with counter.get_lock():
            counter.value += 1
    results.put(times)
    done.wait()


def value_round(times):
    counter = mp.Value("q", 0)
    results = mp.SimpleQueue()
    start = mp.Barrier(3)
    done = mp.Event()
    workers = [mp.Process(target=increment, args=(counter, times, results, start, done)) for _ in range(2)]
    for w in workers:
        w.start()
    start.wait()
    cpu = common.CPUWindow([w.pid for w in workers])
    t0 = time.perf_counter()
    results.get()
    results.get()
    rate = 2 * times / (time.perf_counter() - t0)
    cpu_per = cpu.micros_per(2 * times)
    done.set()
    for w in workers:
        w.join()
    assert counter.value == 2 * times
    return rate, cpu_per


if __name__ == "__main__":
    common.ensure_venv()
    s = common.settings()
    parts, rounds = set(s["parts"]), s["rounds"]
    common.emit_versions()
    method = mp.get_start_method()
    if "queue" in parts:
        rate, cpu = common.median_row(rounds, lambda: queue_round(s["small"], 64))
        common.emit("ipc.queue-small", "mp.Queue", rate, "messages/s",
                    f"multiprocessing.Queue: the child put()s, the parent get()s; children started by {method}", cpu)
    if "big" in parts:
        rate, cpu = common.median_row(rounds, lambda: queue_round(s["big"], 65_536))
        common.emit("ipc.queue-big", "mp.Queue", rate, "messages/s",
                    f"multiprocessing.Queue: the child put()s, the parent get()s; children started by {method}", cpu)
    if "many" in parts:
        rate, cpu = common.median_row(rounds, lambda: many_round(s["many"]))
        common.emit("ipc.queue-many", "mp.Queue", rate, "messages/s",
                    f"multiprocessing.Queue(100000) shared by 4 children started by {method}; counts back on a "
                    "SimpleQueue", cpu)
    if "pipe" in parts:
        micros, cpu = common.median_row(rounds, lambda: pipe_round(s["pings"]))
        common.emit("ipc.pipe", "mp.Pipe", micros, "us",
                    "multiprocessing.Pipe: send_bytes, recv_bytes; the child echoes", cpu)
    if "value" in parts:
        rate, cpu = common.median_row(rounds, lambda: value_round(s["increments"]))
        common.emit("ipc.value", "mp.Value", rate, "increments/s",
                    f"multiprocessing.Value('q') with its lock; children started by {method}", cpu)
