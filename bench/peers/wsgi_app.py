"""The WSGI app that gunicorn and uWSGI serve in crew-bench's HTTP rows: the same routes as crew-demo's Seed 3.2
router, answered the same way.

  GET /          200 "Hello, World!\\n"
  GET /io?ms=N   sleeps N ms (default 100, 0...60000), then "waited N ms in pid P\\n"; under gevent's monkey
                 patching (gunicorn -k gevent, uwsgi --gevent-monkey-patch) the sleep yields to other requests
  GET /cpu?n=N   N rounds of the same arithmetic as Seed32.work (default 100000, 0...100000000), then "SUM\\n"
  anything else  404, no body

A value out of range is a 400 with the JSON body Hummingbird gives an HTTPError with a message; a value that is
not a whole number counts as missing, as Hummingbird's queryParameters.get(_:as:) reads it. Every answer carries
Content-Length. Run this file directly to print work(1000), checked against the value crew-demo's Swift computes.
"""
import json
import os
import re
import time
from urllib.parse import parse_qsl

MASK = 0xFFFFFFFFFFFFFFFF

# work(1000) as Seed32.work computes it in Swift (swiftc -O, UInt64 with wrapping arithmetic).
WORK_1000 = 18186422087365525980

TEXT = "text/plain; charset=utf-8"
JSON = "application/json; charset=utf-8"
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")


def work(n):
    """Seed32.work: an xorshift step and a multiply-add per round, every step modulo 2^64."""
    x = 0x9E3779B97F4A7C15
    total = 0
    for i in range(n):
        x ^= (x << 13) & MASK
        x ^= x >> 7
        x ^= (x << 17) & MASK
        total = (total + x * i) & MASK
    return total


def whole_number(query, name, default):
    """The first value of `name` in the query string as an int, or `default` when missing or not a number."""
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == name:
            return int(value) if WHOLE_NUMBER.fullmatch(value) else default
    return default


def answer(start_response, status, body, content_type=TEXT):
    data = body.encode()
    headers = [("Content-Length", str(len(data)))]
    if data:
        headers.insert(0, ("Content-Type", content_type))
    start_response(status, headers)
    return [data]


def bad_request(start_response, message):
    body = json.dumps({"error": {"message": message}}, separators=(",", ":"))
    return answer(start_response, "400 Bad Request", body, JSON)


def application(environ, start_response):
    if environ["REQUEST_METHOD"] != "GET":
        return answer(start_response, "404 Not Found", "")
    path = environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    if path == "/":
        return answer(start_response, "200 OK", "Hello, World!\n")
    if path == "/io":
        ms = whole_number(query, "ms", 100)
        if not 0 <= ms <= 60_000:
            return bad_request(start_response, "ms must be 0...60000")
        time.sleep(ms / 1000)
        return answer(start_response, "200 OK", f"waited {ms} ms in pid {os.getpid()}\n")
    if path == "/cpu":
        n = whole_number(query, "n", 100_000)
        if not 0 <= n <= 100_000_000:
            return bad_request(start_response, "n must be 0...100000000")
        return answer(start_response, "200 OK", f"{work(n)}\n")
    return answer(start_response, "404 Not Found", "")


if __name__ == "__main__":
    value = work(1000)
    print(f"work(1000) = {value}")
    if value != WORK_1000:
        raise SystemExit(f"work(1000) differs from Seed32.work's {WORK_1000}")
