#!/usr/bin/python3
"""Fake Frappe web server for realtimed integration tests (stdlib only).

It answers the two callbacks the realtime server makes (see
docs reference sections 1.5, 1.6, 2.2, 7):

  GET /api/method/frappe.realtime.get_user_info
      -> 200 {"message": {"user", "user_type", "installed_apps"}}
         401 {"exc_type": "AuthenticationError"}      unknown credentials
         200 {"message": {}}                           socket secret mismatch
  GET /api/method/frappe.realtime.has_permission?doctype=..&name=..
      -> 200 {"message": true}  or  403 {"exc_type": "PermissionError"}

The caller is identified by the exact `Authorization` header value if one is
sent (token wins over cookie, as in Frappe), else by `Cookie: sid=...`.
`sid=Guest` (or no credentials at all) is the Guest user.

Usage: fake_frappe.py --port N [--config FILE] [--verbose]
Port 0 picks a free port; the chosen one is printed as
"fake_frappe listening on <port>" once the server accepts connections.

Control API (JSON, same port):
  POST /_fake/config[?replace=1]  shallow-merge (or replace) the config;
                                  also resets the per-credential counters
  GET  /_fake/config              current config
  GET  /_fake/requests            recorded callback requests (not /_fake/ ones):
        [{"method","path","raw_query","query":{k: first value},
          "headers":{lower-case name: value},"status","time"}]
  POST /_fake/reset               clear records, counters and config

Config (every key optional):
  {
    "users": {
      "alice@x": {
        "user_type": "System User",         # default "System User"
        "sids": ["sid-alice"],              # Cookie: sid=<value>
        "tokens": ["token k1:s1", "Bearer b1"],  # exact Authorization value
        "apps": ["frappe"],                 # installed_apps, default ["frappe"]
        "allow_all": false,                 # every permission check passes
        "doctypes": ["ToDo"],               # any doc of these (and name="")
        "docs": [["ToDo", "T/1 x"]]         # single (doctype, name) pairs
      },
      "Guest": {...}   # optional; default Website User, apps ["frappe"], no perms
    },
    "allow_all": false,                # every permission check passes, all users
    "unknown_sid_as_guest": false,     # real Frappe falls back to Guest; tests
                                       # default to 401 to exercise that path
    "fail": {"get_user_info": "html500"},   # or "json500", "close";
            # or {"mode": "html500", "times": 2} to fail only the first 2 calls
    "delay_ms": {"has_permission": 300},    # sleep before answering
    "omit_apps": {"sid-alice": 1},   # first N get_user_info replies for this
                                     # credential (sid or Authorization value)
                                     # lack installed_apps (one-retry rule)
    "secret": "s3cret",              # expected X-Frappe-Socket-Secret, or
    "secret_redis": {"host": "127.0.0.1", "port": 6380,
                     "key": "socketio_auth_secret"}
        # read the expected secret from redis on every call; if the key is
        # missing it is created (like Frappe's lazy get_socketio_secret), so
        # the first call mismatches and the retry succeeds.
  }
Endpoint names for "fail"/"delay_ms": "get_user_info", "has_permission".

Any other /api/method/<name> (an app's whitelisted method, as called by
handlers through socket.frappe_request) answers, for a known caller,
200 {"message": {"method", "name", "user", "query": {k: v}, "form": {k: v},
"content_type"}} (GET or POST with a form body); unknown credentials 401.
"""

import argparse
import json
import secrets
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

METHOD_PREFIX = "/api/method/frappe.realtime."
DEFAULT_GUEST = {"user_type": "Website User", "apps": ["frappe"]}

_lock = threading.Lock()
_config = {}
_requests = []
_counters = {}  # (kind, key) -> calls seen; drives "times" and "omit_apps"


def _bump(kind, key):
    with _lock:
        n = _counters.get((kind, key), 0) + 1
        _counters[(kind, key)] = n
        return n


def redis_command(host, port, *args):
    """One raw RESP command; returns str, int or None. Avoids needing redis-py."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(out)
        f = s.makefile("rb")
        line = f.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else f.read(n + 2)[:n].decode()
        if kind == b":":
            return int(rest)
        if kind == b"-":
            raise RuntimeError(rest.decode())
        return rest.decode()


def expected_secret(cfg):
    """None means no secret is configured (pre-v16 Frappe: header ignored)."""
    r = cfg.get("secret_redis")
    if r:
        host, port = r.get("host", "127.0.0.1"), int(r["port"])
        key = r.get("key", "socketio_auth_secret")
        value = redis_command(host, port, "GET", key)
        if value is None:
            # Frappe creates the secret lazily on first use, so a caller that
            # read the key before this moment sends a value that cannot match.
            value = secrets.token_hex(16)
            redis_command(host, port, "SET", key, value)
        return value
    return cfg.get("secret")


def parse_sid(cookie_header):
    for part in (cookie_header or "").split(";"):
        k, _, v = part.strip().partition("=")
        if k == "sid":
            return v
    return None


def identify(cfg, headers):
    """Returns (user name, user config, credential) or (None, None, cred)."""
    users = cfg.get("users") or {}
    auth = headers.get("Authorization")
    if auth:
        for name, u in users.items():
            if auth in (u.get("tokens") or []):
                return name, u, auth
        return None, None, auth
    sid = parse_sid(headers.get("Cookie"))
    if sid in (None, "", "Guest") or (
        cfg.get("unknown_sid_as_guest")
        and not any(sid in (u.get("sids") or []) for u in users.values())
    ):
        return "Guest", users.get("Guest") or DEFAULT_GUEST, sid
    for name, u in users.items():
        if sid in (u.get("sids") or []):
            return name, u, sid
    return None, None, sid


def allowed(cfg, ucfg, doctype, name):
    if cfg.get("allow_all") or ucfg.get("allow_all"):
        return True
    if doctype in (ucfg.get("doctypes") or []):
        return True
    return [doctype, name] in [list(d) for d in ucfg.get("docs") or []]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, delayed ACKs add
    # ~20 ms to every keep-alive callback.
    disable_nagle_algorithm = True
    server_version = "fake_frappe"
    verbose = False

    def log_message(self, fmt, *args):
        if self.verbose:
            sys.stderr.write("fake_frappe: " + fmt % args + "\n")

    def send_json(self, status, obj):
        self.send_body(status, json.dumps(obj).encode(), "application/json")

    def send_body(self, status, body, ctype):
        # Record a callback before answering it: a client that has its answer
        # must find the request in /_fake/requests.
        self._status = status
        if getattr(self, "_url", None) is not None and not self._recorded:
            self.record(self._url)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self._status = status

    def read_json(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw.strip() else {}

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path.startswith("/_fake/"):
            return self.control("GET", url)
        self._status = None
        self._url, self._recorded = url, False
        try:
            self.callback(url)
        finally:
            if not self._recorded:
                self.record(url)
            self._url = None

    def do_POST(self):
        url = urlsplit(self.path)
        if url.path.startswith("/_fake/"):
            return self.control("POST", url)
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        self._status = None
        self._url, self._recorded = url, False
        try:
            if url.path.startswith("/api/method/") and not url.path.startswith(METHOD_PREFIX):
                self.app_method(url, raw)
            else:
                self.send_json(405, {"exc_type": "MethodNotAllowed"})
        finally:
            if not self._recorded:
                self.record(url)
            self._url = None

    def app_method(self, url, raw=b""):
        with _lock:
            cfg = dict(_config)
        user, _, _ = identify(cfg, self.headers)
        if user is None:
            return self.send_json(401, {"exc_type": "AuthenticationError"})
        q = parse_qs(url.query, keep_blank_values=True)
        form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True) if raw else {}
        return self.send_json(200, {"message": {
            "method": self.command, "name": url.path[len("/api/method/"):], "user": user,
            "query": {k: v[0] for k, v in q.items()}, "form": {k: v[0] for k, v in form.items()},
            "content_type": self.headers.get("Content-Type"),
            "site": self.headers.get("X-Frappe-Site-Name"),
            "secret": self.headers.get("X-Frappe-Socket-Secret"),
        }})

    def record(self, url):
        q = parse_qs(url.query, keep_blank_values=True)
        entry = {
            "method": self.command,
            "path": url.path,
            "raw_query": url.query,
            "query": {k: v[0] for k, v in q.items()},
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "status": self._status,  # None: connection closed on purpose
            "time": time.time(),
        }
        self._recorded = True
        with _lock:
            _requests.append(entry)

    def control(self, method, url):
        global _config
        route = (method, url.path)
        if route == ("POST", "/_fake/config"):
            body = self.read_json()
            with _lock:
                if "replace=1" in url.query:
                    _config = body
                else:
                    _config = {**_config, **body}
                _counters.clear()
            return self.send_json(200, {"ok": True})
        if route == ("GET", "/_fake/config"):
            with _lock:
                return self.send_json(200, _config)
        if route == ("GET", "/_fake/requests"):
            with _lock:
                return self.send_json(200, list(_requests))
        if route == ("POST", "/_fake/reset"):
            self.read_json()
            with _lock:
                _config = {}
                _requests.clear()
                _counters.clear()
            return self.send_json(200, {"ok": True})
        return self.send_json(404, {"error": "unknown control route"})

    def callback(self, url):
        if url.path.startswith("/api/method/") and not url.path.startswith(METHOD_PREFIX):
            return self.app_method(url)
        if not url.path.startswith(METHOD_PREFIX):
            return self.send_json(404, {"exc_type": "DoesNotExistError"})
        endpoint = url.path[len(METHOD_PREFIX):]
        if endpoint not in ("get_user_info", "has_permission"):
            return self.send_json(404, {"exc_type": "DoesNotExistError"})
        with _lock:
            cfg = dict(_config)

        delay = (cfg.get("delay_ms") or {}).get(endpoint)
        if delay:
            time.sleep(delay / 1000)

        fail = (cfg.get("fail") or {}).get(endpoint)
        if isinstance(fail, dict):
            times = fail.get("times")
            n = _bump("fail", endpoint)
            fail = fail.get("mode") if times is None or n <= times else None
        if fail == "close":
            self.close_connection = True
            return
        if fail == "html500":
            body = b"<!DOCTYPE html><html><body><h1>500 Internal Server Error</h1></body></html>"
            return self.send_body(500, body, "text/html; charset=utf-8")
        if fail == "json500":
            return self.send_json(500, {"exc_type": "Exception"})

        user, ucfg, cred = identify(cfg, self.headers)
        if user is None:
            return self.send_json(401, {"exc_type": "AuthenticationError"})

        if endpoint == "has_permission":
            q = parse_qs(url.query, keep_blank_values=True)
            doctype = q.get("doctype", [""])[0]
            name = q.get("name", [""])[0]
            if doctype and allowed(cfg, ucfg, doctype, name):
                return self.send_json(200, {"message": True})
            return self.send_json(403, {"exc_type": "PermissionError"})

        want = expected_secret(cfg)
        if want is not None and self.headers.get("X-Frappe-Socket-Secret") != want:
            return self.send_json(200, {"message": {}})
        info = {"user": user, "user_type": ucfg.get("user_type", "System User")}
        omit = (cfg.get("omit_apps") or {}).get(cred, 0)
        if not omit or _bump("omit_apps", cred) > omit:
            info["installed_apps"] = ucfg.get("apps", ["frappe"])
        return self.send_json(200, {"message": info})


def main():
    global _config
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--config", help="JSON file with the initial config")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if args.config:
        with open(args.config) as f:
            _config = json.load(f)
    Handler.verbose = args.verbose
    srv = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"fake_frappe listening on {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
