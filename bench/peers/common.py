"""What every Python peer of crew-bench shares: its venv, its settings, its output, its clocks.

A peer takes one argument, a JSON object of settings (the same values crew-bench's Crew side uses), and prints one
JSON line per figure: {"workload", "variant", "value", "unit", "setup", "cpu_us", "details"}, plus one line of
versions: {"versions": {...}}.
"""
import hashlib
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.realpath(os.path.join(HERE, "..", "..", ".build", "bench-venv"))
REQUIREMENTS = os.path.join(HERE, "requirements.txt")


def ensure_venv():
    """Runs the calling script again in .build/bench-venv, which holds exactly requirements.txt (made on first
    use, remade when the file changes)."""
    if os.path.realpath(sys.prefix) == VENV:
        return
    python = os.path.join(VENV, "bin", "python")
    with open(REQUIREMENTS, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    stamp = os.path.join(VENV, "crew-requirements.sha256")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True, stdout=subprocess.DEVNULL)
    current = open(stamp).read() if os.path.exists(stamp) else ""
    if current != digest:
        subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", REQUIREMENTS],
                       check=True, stdout=subprocess.DEVNULL)
        with open(stamp, "w") as f:
            f.write(digest)
    # Python's defaults, whatever this shell set: byte code cached as a deployed program has it.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.execv(python, [python, os.path.abspath(sys.argv[0])] + sys.argv[1:])


def settings():
    """The settings crew-bench passed, as a dict."""
    if len(sys.argv) < 2:
        sys.exit(f"usage: {sys.argv[0]} '<settings as JSON>' (crew-bench passes them)")
    return json.loads(sys.argv[1])


def emit(workload, variant, value, unit, setup, cpu_us=None, details=None):
    line = {"workload": workload, "variant": variant, "value": value, "unit": unit, "setup": setup}
    if cpu_us is not None and cpu_us == cpu_us:  # NaN (a process gone before its CPU time was read): left out.
        line["cpu_us"] = cpu_us
    if details:
        line["details"] = details
    print(json.dumps(line), flush=True)


def emit_versions(*packages, extra=None):
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions.update(extra or {})
    print(json.dumps({"versions": versions}), flush=True)


def median_of(rounds, measure, warm_up=True):
    """One untimed round when warm_up, then the median of `rounds` (crew-bench does the same)."""
    if warm_up:
        measure()
    return statistics.median([measure() for _ in range(rounds)])


def median_row(rounds, measure, warm_up=True):
    """As median_of, for rounds that return a tuple: the round whose first figure is the median."""
    if warm_up:
        measure()
    values = sorted((measure() for _ in range(rounds)), key=lambda v: v[0])
    return values[len(values) // 2]


def cpu_seconds(pid):
    """CPU time of a live process so far, every live thread, in seconds (the sum of /proc/PID/task/*/schedstat,
    as crew-bench reads it)."""
    total = 0
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return float("nan")  # Gone: the figure is then left out, never too low.
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1e9


def self_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CPUWindow:
    """CPU time of this process and `pids` over a window, read while they are all alive."""

    def __init__(self, pids):
        self.pids = list(pids)
        self.start = self._total()

    def _total(self):
        return self_cpu_seconds() + sum(cpu_seconds(pid) for pid in self.pids)

    def micros_per(self, operations):
        return (self._total() - self.start) * 1e6 / operations


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def heap_bytes_in_use():
    """glibc's mallinfo2: uordblks + hblkhd, as crew-bench reads it. Python's small objects come from its own
    arenas (mmap), which this does not count: the resident size is the figure that compares."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


def burn(job):
    """The CPU-bound rows' work, the same loop as crew-bench's BenchFunctions.burnLoop: `steps` steps of a linear
    congruential generator from `seed`, modulo 2^64."""
    seed, steps = job
    x = seed
    for i in range(steps):
        x = (x * 6364136223846793005 + i) & 0xFFFFFFFFFFFFFFFF
    return x


def grouped(n):
    return f"{n:,}".replace(",", " ")
