"""Process helpers for realtimed integration tests under pytest (stdlib only).

Mirrors tests/lib/procs.mjs. Each class starts its process in __init__ and is
a context manager; anything still running at interpreter exit is killed, and
temp dirs are removed.

    with RedisServer() as redis, FakeFrappe(config={...}) as fake:
        bench = make_bench(common_site_config={"redis_queue": redis.url})
        with Realtimed(["--port", str(p)], cwd=bench) as rt:
            ...
"""

import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAKE_FRAPPE = ROOT / "tests" / "fake_frappe" / "fake_frappe.py"

sys.path.insert(0, str(FAKE_FRAPPE.parent))
from fake_frappe import redis_command as _redis_command  # noqa: E402

_live = set()
_temp_dirs = []


@atexit.register
def _cleanup():
    for p in list(_live):
        p.kill()
    for d in _temp_dirs:
        shutil.rmtree(d, ignore_errors=True)


def temp_dir(prefix="realtimed-test-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _temp_dirs.append(d)
    return d


def free_port():
    """A port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(fn, timeout=5.0, interval=0.025):
    """Poll fn until it returns a truthy value; returns it."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # keep polling; report the last error
            last = e
        if time.monotonic() > deadline:
            raise TimeoutError(f"wait_for timed out after {timeout}s" + (f": {last!r}" if last else ""))
        time.sleep(interval)


def _can_connect(target):
    fam = socket.AF_UNIX if isinstance(target, str) else socket.AF_INET
    with socket.socket(fam) as s:
        s.settimeout(1)
        try:
            s.connect(target)
            return True
        except OSError:
            return False


class _Proc:
    """A child with stdout+stderr merged into self.lines."""

    def _launch(self, argv, env=None, cwd=None):
        self.lines = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True, env=env, cwd=cwd,
                                     errors="replace")
        _live.add(self.proc)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def output(self):
        return "\n".join(self.lines)

    @property
    def running(self):
        return self.proc.poll() is None

    def wait_for_line(self, pattern, timeout=5.0):
        """re.Match of the first line (already seen or future) matching pattern."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    m = rx.search(line)
                    if m:
                        return m
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no line matching {pattern!r} in {timeout}s; output:\n{self.output()}")
                self._cond.wait(left)

    def _until_ready(self, ready, what, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not ready():
            if not self.running:
                self._reader.join(2)  # collect the last output
                raise RuntimeError(f"{what} exited ({self.proc.returncode}) before it was ready; output:\n{self.output()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{what} not ready after {timeout}s; output:\n{self.output()}")
            time.sleep(0.025)

    def stop(self, kill_after=5.0):
        """SIGTERM, SIGKILL after kill_after seconds; returns the exit status."""
        if self.running:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(kill_after)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        rc = self.proc.wait()
        self._reader.join(2)
        _live.discard(self.proc)
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class RedisServer(_Proc):
    def __init__(self, port=None, args=()):
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self._args = list(args)
        self._dir = temp_dir("realtimed-redis-")
        self.start()

    def start(self):
        self._launch(["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no",
                      "--bind", "127.0.0.1", "--dir", self._dir, *self._args])
        self._until_ready(self._pong, "redis-server")

    def _pong(self):
        try:
            return self.command("PING") == "PONG"
        except OSError:
            return False

    def restart(self):
        """Same port, empty dataset."""
        self.stop()
        self.start()

    def command(self, *args):
        return _redis_command("127.0.0.1", self.port, *args)

    def publish(self, channel, msg):
        return self.command("PUBLISH", channel, msg if isinstance(msg, str) else json.dumps(msg))


class FakeFrappe(_Proc):
    def __init__(self, config=None, verbose=False):
        self._launch(["/usr/bin/python3", str(FAKE_FRAPPE), "--port", "0",
                      *(["--verbose"] if verbose else [])])
        try:
            self.port = int(self.wait_for_line(r"^fake_frappe listening on (\d+)", 10).group(1))
        except TimeoutError:
            self.stop()
            raise
        self.url = f"http://127.0.0.1:{self.port}"
        if config:
            self.config(config)

    def _call(self, method, route, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + route, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as res:
            return json.load(res)

    def config(self, obj, replace=False):
        """Shallow-merge obj into the config (replace=True replaces it)."""
        return self._call("POST", "/_fake/config" + ("?replace=1" if replace else ""), obj)

    def get_config(self):
        return self._call("GET", "/_fake/config")

    def requests(self, endpoint=None):
        """Recorded callbacks; endpoint ('get_user_info'/'has_permission') filters."""
        rows = self._call("GET", "/_fake/requests")
        return [r for r in rows if r["path"].endswith("." + endpoint)] if endpoint else rows

    def reset(self):
        return self._call("POST", "/_fake/reset", {})


class Realtimed(_Proc):
    """build/realtimed (or $REALTIMED_BIN); ready when --port (or socket_path) accepts."""

    def __init__(self, args=(), env=None, cwd=None, port=None, socket_path=None, timeout=10.0):
        args = [str(a) for a in args]
        if port is None:
            for i, a in enumerate(args):
                if a == "--port":
                    port = int(args[i + 1])
                elif a.startswith("--port="):
                    port = int(a[7:])
        if port is None and socket_path is None:
            raise ValueError("Realtimed: pass --port N or port=/socket_path=")
        self.port = port
        self.url = f"http://127.0.0.1:{port}" if port else None
        binary = os.environ.get("REALTIMED_BIN") or str(ROOT / "build" / "realtimed")
        self._launch([binary, *args], env={**os.environ, **(env or {})}, cwd=cwd)
        target = socket_path or ("127.0.0.1", port)
        self._until_ready(lambda: _can_connect(target), "realtimed", timeout)


def make_bench(common_site_config=None, config=None, sites=("site1.local",), apps=None):
    """Temp bench: config.json, sites/common_site_config.json, sites/<site>/site_config.json.

    sites: names, or {name: site_config}. apps: {name: source folder},
    symlinked into apps/ as bench does (and listed in sites/apps.txt).
    Returns the bench path (str).
    """
    d = Path(temp_dir("realtimed-bench-"))
    site_map = sites if isinstance(sites, dict) else {s: {} for s in sites}
    (d / "sites").mkdir()
    (d / "config.json").write_text(json.dumps(config or {}, indent=1))
    (d / "sites" / "common_site_config.json").write_text(json.dumps(common_site_config or {}, indent=1))
    for name, sc in site_map.items():
        (d / "sites" / name).mkdir()
        (d / "sites" / name / "site_config.json").write_text(json.dumps(sc, indent=1))
    if apps:
        (d / "apps").mkdir()
        for name, src in apps.items():
            (d / "apps" / name).symlink_to(src)
        (d / "sites" / "apps.txt").write_text("".join(f"{a}\n" for a in apps))
    return str(d)
