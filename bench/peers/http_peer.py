#!/usr/bin/env python3
"""The Python side of crew-bench's HTTP rows: where the servers and the app are, for crew-bench to start them.

crew-bench runs gunicorn (gevent workers) and uWSGI (gevent, monkey patched) itself, serving wsgi_app.py beside
this file, and loads them with wrk next to Crew's server. This script only makes sure .build/bench-venv holds
them, then prints one JSON line: {"python", "gunicorn", "uwsgi", "app_dir", "versions": {"python", "gunicorn",
"uwsgi", "gevent"}}, every path absolute. It takes the usual settings argument and reads nothing from it.
"""
import importlib.metadata
import json
import os
import platform
import sys

import common


def version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main():
    common.ensure_venv()
    bin_dir = os.path.join(common.VENV, "bin")
    paths = {name: os.path.join(bin_dir, name) for name in ("python", "gunicorn", "uwsgi")}
    missing = [path for path in paths.values() if not os.access(path, os.X_OK)]
    if missing:
        sys.exit(f"not in the venv: {', '.join(missing)} (is it in requirements.txt?)")
    app_dir = os.path.dirname(os.path.abspath(__file__))
    if not os.path.exists(os.path.join(app_dir, "wsgi_app.py")):
        sys.exit(f"wsgi_app.py is missing from {app_dir}")
    versions = {"python": platform.python_version()}
    versions.update({name: version(name) for name in ("gunicorn", "uwsgi", "gevent")})
    print(json.dumps({**paths, "app_dir": app_dir, "versions": versions}), flush=True)


if __name__ == "__main__":
    main()
