#!/usr/bin/env python3
"""Runs a command as a child subreaper and fails if any process it started outlives its parent.

Crew's children must never outlive their parent. Any process whose parent dies is reparented here; one that
is still alive ORPHAN_SECONDS later is reported, killed and counted as a failure — during the run too, since
an orphan holding the test runner's output pipe would otherwise keep `swift test` waiting forever. The whole
command is stopped after TIMEOUT_SECONDS. Zombies are reaped.
"""
import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
GRACE_SECONDS = 10
ORPHAN_SECONDS = 10
TIMEOUT_SECONDS = int(os.environ.get("CREW_TEST_TIMEOUT", "1800"))


def children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def command_line(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0] != 0:
            pass
    except ChildProcessError:
        pass


def main():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("no-orphans: cannot become a subreaper; orphans will not be detected", file=sys.stderr)
    proc = subprocess.Popen(sys.argv[1:])
    started = time.time()
    first_seen = {}
    killed = []
    rc = None
    while rc is None:
        try:
            rc = proc.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            pass
        reap()
        now = time.time()
        for pid in children_of(os.getpid()):
            if pid == proc.pid:
                continue
            first_seen.setdefault(pid, now)
            if now - first_seen[pid] > ORPHAN_SECONDS:
                print(f"no-orphans: {pid} ({command_line(pid)}) outlived its parent; killing it", file=sys.stderr)
                killed.append(pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if now - started > TIMEOUT_SECONDS:
            print(f"no-orphans: the run took over {TIMEOUT_SECONDS} s; stopping it", file=sys.stderr)
            proc.kill()
            rc = proc.wait()
            rc = rc or 1
    deadline = time.time() + GRACE_SECONDS
    left = []
    while True:
        reap()
        left = children_of(os.getpid())
        if not left or time.time() > deadline:
            break
        time.sleep(0.1)
    if killed and not left:
        return rc or 1
    if left:
        print(f"no-orphans: {len(left)} process(es) outlived the test run:", file=sys.stderr)
        for pid in left:
            print(f"  {pid}: {command_line(pid)}", file=sys.stderr)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        reap()
        return rc or 1
    print("no-orphans: no process outlived the test run")
    return rc


if __name__ == "__main__":
    sys.exit(main())
