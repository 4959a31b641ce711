"""realtimed's host for apps' realtime/handlers.py (protocol: docs/handlers.md).

realtimed runs this with the bench's interpreter (<bench>/env/bin/python -u)
and the bench root as working directory, and talks to it on file descriptor
3: frames of a 4-byte little-endian length and a JSON object.

Apps register handlers as with Frappe's Python realtime server:

    from frappe.realtime import Socket, realtime

    @realtime.on("event", allow_guest=False, frappe_context=False)
    def handler(socket: Socket, *args): ...

Where the bench's frappe.realtime has that registry (frappe/realtime/
registry.py), handlers register into Frappe's own object and are dispatched
from it; with the older plain frappe.realtime module (or no frappe at all),
this host attaches `realtime`, `Socket` and the room helpers to it before it
imports any handler. Dispatch follows upstream: a handler runs only when its
app is in the socket's installed_apps, for Guests only with allow_guest,
with the client's arguments positionally; `connect` after authentication,
`disconnect` after the socket left its rooms. `async def` handlers run on
this loop with an awaitable Socket; plain functions run in a bounded thread
pool with a blocking one; frappe_context=True (plain only) opens Frappe's
context for the site and user. A handler that raises is logged with app,
event and traceback; nothing else happens.

`--check BENCH APP...` imports each app's handlers and exits 1 if one fails
(realtimed --check-config uses it).
"""

import asyncio
import base64
import concurrent.futures
import contextlib
import dataclasses
import datetime
import importlib
import importlib.util
import inspect
import json
import os
import signal
import socket as pysocket
import struct
import sys
import threading
import traceback
import types
from contextlib import contextmanager

CORE_APP = "frappe"
LOOP_CALL_TIMEOUT = 120
RESERVED = {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}


def log(level, msg):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    sys.stderr.write(f"{now} {level} handlers.py: {msg}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------- registry
@dataclasses.dataclass(frozen=True)
class Handler:
    event: str
    fn: object
    frappe_context: bool
    allow_guest: bool
    app: str


def is_async_callable(fn):
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


class Registry:
    """The registry for benches whose frappe.realtime has none (same API)."""

    def __init__(self):
        self._handlers = {}
        self._current_app = CORE_APP

    def on(self, event, *, frappe_context=False, allow_guest=False):
        def decorator(fn):
            if frappe_context and is_async_callable(fn):
                raise TypeError("frappe_context runs in a worker thread, so the handler must be a plain function")
            self._handlers.setdefault(event, []).append(
                Handler(event, fn, frappe_context, allow_guest, self._current_app))
            return fn
        return decorator

    @contextmanager
    def importing_app(self, app):
        prev, self._current_app = self._current_app, app
        try:
            yield
        finally:
            self._current_app = prev

    def handlers_for(self, event):
        return list(self._handlers.get(event, ()))

    def events(self):
        return list(self._handlers)


def drop_app(registry, app):
    """Removes an app's registrations (its module failed to import)."""
    store = getattr(registry, "_handlers", None)
    if isinstance(store, dict):
        for event in list(store):
            store[event] = [h for h in store[event] if getattr(h, "app", None) != app]
            if not store[event]:
                del store[event]


# ---------------------------------------------------------------- room helpers (Frappe's)
def get_doctype_room(doctype):
    return f"doctype:{doctype}"


def get_doc_room(doctype, docname):
    return f"doc:{doctype}/{'' if docname is None else docname}"


def get_user_room(user):
    return f"user:{user}"


def get_site_room():
    return "all"


def get_task_progress_room(task_id):
    return f"task_progress:{task_id}"


def get_website_room():
    return "website"


ROOM_HELPERS = {f.__name__: f for f in (get_doctype_room, get_doc_room, get_user_room, get_site_room,
                                        get_task_progress_room, get_website_room)}


# ---------------------------------------------------------------- binary
def deconstruct(values):
    """Python values -> (JSON-able with socket.io placeholders, base64 list)."""
    b = []

    def walk(v):
        if isinstance(v, (bytes, bytearray, memoryview)):
            b.append(base64.b64encode(bytes(v)).decode())
            return {"_placeholder": True, "num": len(b) - 1}
        if isinstance(v, (list, tuple)):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {str(k): walk(x) for k, x in v.items()}
        return v

    return [walk(v) for v in values], b


def reconstruct(a, b):
    if not b:
        return a
    bufs = [base64.b64decode(x) for x in b]

    def walk(v):
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            if v.get("_placeholder") is True and isinstance(v.get("num"), int) and 0 <= v["num"] < len(bufs):
                return bufs[v["num"]]
            return {k: walk(x) for k, x in v.items()}
        return v

    return walk(a)


# ---------------------------------------------------------------- the host
class Host:
    def __init__(self):
        self.loop = None
        self.writer = None
        self.bench = os.environ.get("REALTIMED_BENCH") or os.getcwd()
        self.apps = []
        self.registry = None
        self.failed = set()
        self.sockets = {}        # id -> SocketState
        self.rooms = {}          # (nsp, room) -> set of ids
        self.req_seq = 0
        self.waiting = {}        # request id -> future
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=int(os.environ.get("REALTIMED_PY_WORKERS") or 8), thread_name_prefix="realtime-worker")
        self.frappe = None

    # -- wire
    # One connection per realtimed process: fd 3 from the one that started
    # us, and with --workers the other workers of the machine connect to
    # REALTIMED_HOST_LISTEN. A message naming a socket goes to the connection
    # the socket came from (a broadcast: its sender's); the rest to fd 3.
    def send(self, msg, writer=None):
        """Thread-safe: frames are written from the loop."""
        if writer is None:
            st = self.sockets.get(msg.get("s") or msg.get("except"))
            writer = st.writer if st is not None and st.writer is not None else self.writer
        data = json.dumps(msg, separators=(",", ":")).encode()
        frame = struct.pack("<I", len(data)) + data
        if threading.current_thread() is threading.main_thread():
            writer.write(frame)
        else:
            self.loop.call_soon_threadsafe(writer.write, frame)

    def request(self, msg):
        self.req_seq += 1
        msg["id"] = self.req_seq
        fut = self.loop.create_future()
        self.waiting[self.req_seq] = fut
        self.send(msg)
        return fut

    # -- loading
    def setup_api(self):
        """Makes `from frappe.realtime import Socket, realtime` work."""
        try:
            import frappe  # noqa: F401
            self.frappe = sys.modules["frappe"]
        except Exception as e:  # noqa: BLE001
            log("warning", f"frappe is not importable ({e!r}): handlers get a stand-in frappe.realtime; "
                           "frappe_context handlers are refused")
            frappe = types.ModuleType("frappe")
            frappe.__path__ = []
            sys.modules["frappe"] = frappe
        try:
            has_registry = importlib.util.find_spec("frappe.realtime.registry") is not None
        except (ImportError, ValueError):
            has_registry = False
        if has_registry:
            from frappe.realtime.registry import realtime as registry
            self.registry = registry
            log("info", "dispatching from the bench's frappe.realtime registry")
        else:
            try:
                rt = importlib.import_module("frappe.realtime")
            except Exception:  # noqa: BLE001
                rt = types.ModuleType("frappe.realtime")
                sys.modules["frappe.realtime"] = rt
                sys.modules["frappe"].realtime = rt
            self.registry = Registry()
            rt.realtime = self.registry
            rt.Socket = Socket
            for name, fn in ROOM_HELPERS.items():
                if not hasattr(rt, name):
                    setattr(rt, name, fn)
            log("info", "frappe.realtime has no registry: realtime, Socket and the room helpers attached")

    def load_apps(self, apps):
        ok = True
        for app in apps:
            if app == CORE_APP:
                continue
            module = f"{app}.realtime.handlers"
            try:
                spec = importlib.util.find_spec(module)
            except (ImportError, ValueError):
                spec = None
            if spec is None:
                log("warning", f"{module} not found (is {app} installed in this Python?)")
                continue
            try:
                with self.registry.importing_app(app):
                    importlib.import_module(module)
                log("info", f"loaded realtime handlers from {module}")
            except BaseException:  # noqa: BLE001
                drop_app(self.registry, app)
                self.failed.add(app)
                log("error", f"failed to import {module}: app {app} has no Python handlers\n{traceback.format_exc()}")
                ok = False
        return ok

    # -- dispatch
    def handlers(self, st, event):
        out = []
        for h in self.registry.handlers_for(event):
            if h.app not in st.installed_apps:
                continue
            if st.user == "Guest" and not h.allow_guest:
                continue
            out.append(h)
        return out

    async def run_handlers(self, st, event, args, k=None):
        handlers = self.handlers(st, event)
        sock = Socket(self, st)
        for h in handlers:
            try:
                if is_async_callable(h.fn):
                    await h.fn(sock, *args)
                else:
                    sync = SyncSocket(sock, self.loop)
                    if h.frappe_context:
                        await self.loop.run_in_executor(self.pool, self.in_context, h, sync, args)
                    else:
                        r = await self.loop.run_in_executor(self.pool, lambda: h.fn(sync, *args))
                        if inspect.isawaitable(r):
                            await r
            except Exception:  # noqa: BLE001
                log("error", f"handler error: event={event} app={h.app}\n{traceback.format_exc()}")
        if k is not None and handlers:
            # as python-socketio does for a handler that returns nothing
            self.send({"t": "ack", "s": st.id, "k": k, "a": []})

    def in_context(self, h, sync, args):
        frappe = self.frappe
        if frappe is None or not hasattr(frappe, "init"):
            raise RuntimeError("frappe_context needs the bench's frappe, which is not importable here")
        frappe.init(site=sync.site, sites_path=os.path.join(self.bench, "sites"), force=True)
        try:
            frappe.connect()
            frappe.set_user(sync.user)
            h.fn(sync, *args)
            frappe.db.commit()
        except BaseException:
            db = getattr(frappe, "db", None)
            if db is not None:
                db.rollback()
            raise
        finally:
            frappe.destroy()

    # -- messages
    def handle(self, msg, writer=None):
        t = msg.get("t")
        if t == "hello":
            if self.registry is None:  # the first realtimed to say hello: load the apps once
                self.bench = msg.get("bench") or self.bench
                self.apps = msg.get("apps") or []
                self.setup_api()
                self.load_apps(self.apps)
            self.send({"t": "ready", "lang": "python", "pid": os.getpid(), "python": sys.version.split()[0]}, writer)
        elif t == "ping":
            self.send({"t": "pong"}, writer)
        elif t == "connect":
            info = msg.get("info") or {}
            st = SocketState(msg["s"], info)
            st.writer = writer or self.writer
            self.sockets[st.id] = st
            for r in msg.get("rooms") or []:
                self.room_add(st, r)
            names = sorted({e for e in self.registry.events()
                            if e not in ("connect", "disconnect") and self.handlers(st, e)})
            if names:
                self.send({"t": "listen", "s": st.id, "add": names})

            async def connected():
                await self.run_handlers(st, "connect", ())
                self.send({"t": "setup", "s": st.id})  # realtimed held its events until now
            st.tasks.add(asyncio.ensure_future(connected()))
        elif t == "event":
            st = self.sockets.get(msg.get("s"))
            if st is None or not st.connected:
                return
            args = reconstruct(msg.get("a") or [], msg.get("b"))
            task = asyncio.ensure_future(self.run_handlers(st, msg.get("e"), args, msg.get("k")))
            st.tasks.add(task)
            task.add_done_callback(st.tasks.discard)
        elif t == "room":
            st = self.sockets.get(msg.get("s"))
            if st is not None:
                (self.room_add if msg.get("j") else self.room_del)(st, msg.get("r"))
        elif t == "disconnect":
            self.gone(msg.get("s"))
        elif t in ("perm", "secret"):
            fut = self.waiting.pop(msg.get("id"), None)
            if fut is not None and not fut.done():
                fut.set_result(bool(msg.get("ok")) if t == "perm" else (msg.get("v") if msg.get("ok") else None))

    def gone(self, sid):
        st = self.sockets.pop(sid, None)
        if st is None:
            return
        st.connected = False
        for r in list(st.rooms):
            self.room_del(st, r)

        async def gone():
            await self.run_handlers(st, "disconnect", ())
            st.data.clear()
        asyncio.ensure_future(gone())

    async def serve(self, reader, writer):
        """Reads one realtimed connection until it ends."""
        while True:
            try:
                head = await reader.readexactly(4)
                body = await reader.readexactly(struct.unpack("<I", head)[0])
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            try:
                self.handle(json.loads(body), writer)
            except Exception:  # noqa: BLE001
                log("error", f"handling a message failed\n{traceback.format_exc()}")

    async def serve_worker(self, reader, writer):
        """Another worker of the machine; its sockets go with its connection."""
        try:
            await self.serve(reader, writer)
        finally:
            for sid in [k for k, st in self.sockets.items() if st.writer is writer]:
                self.gone(sid)
            writer.close()

    def room_add(self, st, room):
        st.rooms.add(room)
        self.rooms.setdefault((st.nsp, room), set()).add(st.id)

    def room_del(self, st, room):
        st.rooms.discard(room)
        members = self.rooms.get((st.nsp, room))
        if members is not None:
            members.discard(st.id)
            if not members:
                del self.rooms[(st.nsp, room)]

    async def main(self):
        self.loop = asyncio.get_running_loop()
        fd = int(os.environ.get("REALTIMED_HOST_FD") or 3)
        sock = pysocket.socket(fileno=fd)
        reader, self.writer = await asyncio.open_unix_connection(sock=sock, limit=1 << 26)
        server = None
        where = os.environ.get("REALTIMED_HOST_LISTEN")
        if where:
            try:
                os.unlink(where)
            except FileNotFoundError:
                pass
            try:
                server = await asyncio.start_unix_server(self.serve_worker, path=where, limit=1 << 26)
            except OSError as e:
                log("error", f"cannot listen on {where}: {e}")
        await self.serve(reader, self.writer)  # the realtimed that started us: we end with it
        if server is not None:
            server.close()
        self.pool.shutdown(wait=False, cancel_futures=True)


class SocketState:
    def __init__(self, sid, info):
        self.id = sid
        self.nsp = info.get("nsp") or ""
        self.site = info.get("site") or self.nsp[1:]
        self.user = info.get("user") or "Guest"
        self.user_type = info.get("user_type") or ""
        self.installed_apps = list(info.get("installed_apps") or [])
        self.sid_cookie = info.get("sid")
        self.writer = None  # the realtimed connection it came from
        self.rooms = set()
        self.data = {}
        self.connected = True
        self.tasks = set()


HOST = Host()


class Socket:
    """What a handler gets (async methods where upstream's are)."""

    def __init__(self, host, st):
        self._host = host
        self._st = st

    sid = property(lambda self: self._st.id)
    namespace = property(lambda self: self._st.nsp)
    site = property(lambda self: self._st.site)
    user = property(lambda self: self._st.user)
    user_type = property(lambda self: self._st.user_type)
    installed_apps = property(lambda self: list(self._st.installed_apps))

    async def join(self, room):
        if self._st.connected and room not in self._st.rooms:
            self._host.room_add(self._st, room)
            self._host.send({"t": "join", "s": self._st.id, "r": str(room)})

    async def leave(self, room):
        if self._st.connected and room in self._st.rooms:
            self._host.room_del(self._st, room)
            self._host.send({"t": "leave", "s": self._st.id, "r": str(room)})

    async def emit(self, event, data=None, room=None):
        if event in RESERVED:
            raise ValueError(f'"{event}" is a reserved event name')
        a, b = deconstruct([] if data is None else [data])
        if room is None:
            msg = {"t": "emit", "s": self._st.id, "e": event, "a": a}
        else:  # everyone in the room of this namespace, the sender included
            msg = {"t": "bcast", "nsp": self._st.nsp, "rooms": [str(room)], "e": event, "a": a}
        if b:
            msg["b"] = b
        self._host.send(msg)

    def get(self, key, default=None):
        return self._st.data.get(key, default)

    async def set(self, key, value):
        self._st.data[key] = value

    def participants(self, room):
        return sorted(self._host.rooms.get((self._st.nsp, room), ()))

    async def user_of(self, sid):
        other = self._host.sockets.get(sid)
        return other.user if other is not None and other.nsp == self._st.nsp else None

    async def has_permission(self, doctype, name=None):
        if not self._st.connected:
            return False
        return await self._host.request({"t": "perm", "s": self._st.id, "dt": str(doctype or ""),
                                         "dn": None if name in (None, "") else str(name)})

    def __repr__(self):
        return f"<Socket {self._st.id} {self._st.user}@{self._st.site}>"


class SyncSocket:
    """The Socket for plain handlers in worker threads: blocking methods."""

    def __init__(self, sock, loop):
        self._sock = sock
        self._loop = loop

    def _run(self, coro):
        if self._loop.is_closed():
            raise RuntimeError("realtime event loop is closed")
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(LOOP_CALL_TIMEOUT)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise

    sid = property(lambda self: self._sock.sid)
    namespace = property(lambda self: self._sock.namespace)
    site = property(lambda self: self._sock.site)
    user = property(lambda self: self._sock.user)
    user_type = property(lambda self: self._sock.user_type)
    installed_apps = property(lambda self: self._sock.installed_apps)

    def join(self, room):
        return self._run(self._sock.join(room))

    def leave(self, room):
        return self._run(self._sock.leave(room))

    def emit(self, event, data=None, room=None):
        return self._run(self._sock.emit(event, data, room))

    def get(self, key, default=None):
        return self._sock.get(key, default)

    def set(self, key, value):
        return self._run(self._sock.set(key, value))

    def participants(self, room):
        return self._sock.participants(room)

    def user_of(self, sid):
        return self._run(self._sock.user_of(sid))

    def has_permission(self, doctype, name=None):
        return self._run(self._sock.has_permission(doctype, name))

    def __repr__(self):
        return repr(self._sock)


def check(bench, apps):
    """--check: import every app's handlers; 1 if one fails."""
    os.chdir(bench)
    HOST.bench = bench
    HOST.setup_api()
    return 0 if HOST.load_apps(apps) else 1


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2], sys.argv[3:]))
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)  # realtimed decides; EOF ends us
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(HOST.main())
    os._exit(0)
