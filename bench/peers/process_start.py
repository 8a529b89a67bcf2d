#!/usr/bin/env python3
"""Process start with multiprocessing, per start method: the peer of crew-bench's process-start rows.

Settings: {"runs": N}. Each figure is the median of N starts after one untimed (which starts the forkserver).
"""
import multiprocessing as mp
import statistics
import time


def trivial(x):
    return x * 2


def answer(conn, x):
    conn.send(trivial(x))
    conn.close()


def start_and_join(method, runs):
    ctx = mp.get_context(method)
    times = []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        p = ctx.Process(target=trivial, args=(1,))
        p.start()
        p.join()
        if i > 0:
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def first_answer(method, runs):
    """From start() to the child's answer in the parent (the join is outside the window)."""
    ctx = mp.get_context(method)
    times = []
    for i in range(runs + 1):
        mine, theirs = ctx.Pipe(duplex=False)
        t0 = time.perf_counter()
        p = ctx.Process(target=answer, args=(theirs, 1))
        p.start()
        value = mine.recv()
        elapsed = (time.perf_counter() - t0) * 1000
        assert value == 2
        p.join()
        theirs.close()
        mine.close()
        if i > 0:
            times.append(elapsed)
    return statistics.median(times)


if __name__ == "__main__":
    import common  # Here, not at the top: a spawned child imports this file again, and needs only `trivial`.

    common.ensure_venv()
    runs = common.settings()["runs"]
    common.emit_versions()
    common.emit("process_start", "spawn", start_and_join("spawn", runs), "ms",
                "multiprocessing.get_context('spawn').Process: start(), join()")
    common.emit("process_start", "forkserver", start_and_join("forkserver", runs), "ms",
                "multiprocessing.get_context('forkserver').Process: start(), join()")
    common.emit("process_start", "forkserver first answer", first_answer("forkserver", runs), "ms",
                "multiprocessing.get_context('forkserver').Process sending its value through a Pipe: start(), recv()")
