"""Python baseline for realtimed benchmarks: a compact re-implementation of
the behaviour of Frappe's 2026 Python realtime server (frappe/realtime/,
the asyncio generation: socketio.AsyncServer(async_mode="asgi") under
uvicorn, the get_user_info auth callback, Frappe's own handlers and the
Redis `events` bridge), on Debian's python3-socketio, uvicorn, httpx and
redis.asyncio. Written for this project; see README.md for what differs.

    cd <bench> && /usr/bin/python3 .../bench/baseline/server.py
"""

import asyncio
import json
import logging
import os
import sys
from http.cookies import SimpleCookie

import httpx
import redis.asyncio as aioredis
import socketio
import uvicorn


def get_conf():
    bench = os.environ.get("FRAPPE_BENCH_ROOT") or os.getcwd()
    conf = {"socketio_port": 9000}
    for rel in ("config.json", "sites/common_site_config.json"):
        path = os.path.join(bench, rel)
        if os.path.exists(path):
            with open(path) as f:
                for k, v in json.load(f).items():
                    if v:
                        conf[k] = v
    env = os.environ
    if env.get("FRAPPE_SITE"):
        conf["default_site"] = env["FRAPPE_SITE"]
    if env.get("FRAPPE_REDIS_QUEUE"):
        conf["redis_queue"] = env["FRAPPE_REDIS_QUEUE"]
    if env.get("FRAPPE_SOCKETIO_PORT"):
        conf["socketio_port"] = int(env["FRAPPE_SOCKETIO_PORT"])
    conf["bench"] = bench
    return conf


conf = get_conf()
sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*", cors_credentials=True)
app = socketio.ASGIApp(sio, socketio_path="socket.io")
http = None  # httpx.AsyncClient, made in startup()


def hostname(url):
    if not url:
        return None
    if "://" in url:
        url = url.split("/")[2]
    return url.split(":")[0]


def site_name(environ):
    h = lambda k: environ.get("HTTP_" + k.upper().replace("-", "_"))  # noqa: E731
    if h("x-frappe-site-name"):
        return hostname(h("x-frappe-site-name"))
    if conf.get("default_site") and hostname(h("host")) in ("localhost", "127.0.0.1"):
        return conf["default_site"]
    if h("origin"):
        return hostname(h("origin"))
    return hostname(h("host"))


async def frappe_request(session, method, params=None):
    headers = {"X-Frappe-Site-Name": session["site"]}
    if session.get("authorization"):
        headers["Authorization"] = session["authorization"]
    elif session.get("sid"):
        headers["Cookie"] = f"sid={session['sid']}"
    url = f"http://127.0.0.1:{conf['webserver_port']}/api/method/{method}"
    return await http.get(url, params=params or {}, headers=headers)


async def get_user_info(session):
    message = (await frappe_request(session, "frappe.realtime.get_user_info")).json()["message"]
    if not message.get("installed_apps"):
        message = (await frappe_request(session, "frappe.realtime.get_user_info")).json()["message"]
    return message


async def has_permission(session, doctype, name=""):
    try:
        r = await frappe_request(session, "frappe.realtime.has_permission", {"doctype": doctype, "name": name or ""})
        return bool(r.json().get("message"))
    except Exception as e:  # a denial (403) or an error: silent, as in Frappe
        print("Can't check permissions", e, file=sys.stderr)
        return False


def open_doc_room(doctype, docname):
    return f"open_doc:{doctype}/{docname}"


async def notify_doc_viewers(ns, sid, user, doctype, docname):
    room = open_doc_room(doctype, docname)
    users = []
    for member in sio.manager.get_participants(ns, room):
        s = member[0] if isinstance(member, tuple) else member
        try:
            users.append((await sio.get_session(s, namespace=ns))["user"])
        except KeyError:
            pass
    if len(users) == 1 and users[0] == user:
        return
    await sio.emit("doc_viewers", {"doctype": doctype, "docname": docname, "users": list(dict.fromkeys(users))},
                   room=room, namespace=ns)


def wire(ns):
    """Frappe's connect flow and handlers on one site namespace."""

    @sio.on("connect", namespace=ns)
    async def connect(sid, environ, auth=None):
        site = site_name(environ)
        if ns[1:] != site:
            raise socketio.exceptions.ConnectionRefusedError("Invalid namespace")
        if hostname(environ.get("HTTP_HOST")) != hostname(environ.get("HTTP_ORIGIN")):
            raise socketio.exceptions.ConnectionRefusedError("Invalid origin")
        cookie, authz = environ.get("HTTP_COOKIE"), environ.get("HTTP_AUTHORIZATION")
        if not cookie and not authz:
            raise socketio.exceptions.ConnectionRefusedError(
                "Missing cookie and authorization header. Either one needed for authentication.")
        c = SimpleCookie()
        c.load(cookie or "")
        sid_cookie = c["sid"].value if "sid" in c else None
        if not sid_cookie and not authz:
            raise socketio.exceptions.ConnectionRefusedError("No authentication method used. Use cookie or authorization header.")
        session = {"site": site, "sid": sid_cookie, "authorization": authz}
        try:
            message = await get_user_info(session)
        except Exception as e:
            raise socketio.exceptions.ConnectionRefusedError(f"Unauthorized: {e}")
        session.update(user=message["user"], user_type=message.get("user_type"),
                       installed_apps=message.get("installed_apps") or [], open_docs=[])
        await sio.save_session(sid, session, namespace=ns)
        if "frappe" in session["installed_apps"]:
            sio.enter_room(sid, f"user:{session['user']}", namespace=ns)
            sio.enter_room(sid, "website", namespace=ns)
            if session["user_type"] == "System User":
                sio.enter_room(sid, "all", namespace=ns)

    async def sess(sid):
        try:
            s = await sio.get_session(sid, namespace=ns)
        except KeyError:
            return None
        return s if "frappe" in s.get("installed_apps", []) else None

    @sio.on("ping", namespace=ns)
    async def ping(sid, *args):
        if await sess(sid):
            await sio.emit("pong", to=sid, namespace=ns)

    async def join_if(sid, room, *perm):
        s = await sess(sid)
        if s and await has_permission(s, *perm):
            sio.enter_room(sid, room, namespace=ns)
        return s

    @sio.on("doctype_subscribe", namespace=ns)
    async def doctype_subscribe(sid, doctype=None, *a):
        await join_if(sid, f"doctype:{doctype}", doctype)

    @sio.on("doctype_unsubscribe", namespace=ns)
    async def doctype_unsubscribe(sid, doctype=None, *a):
        sio.leave_room(sid, f"doctype:{doctype}", namespace=ns)

    @sio.on("task_subscribe", namespace=ns)
    async def task_subscribe(sid, task_id=None, *a):
        if await sess(sid):
            sio.enter_room(sid, f"task_progress:{task_id}", namespace=ns)

    sio.on("progress_subscribe", namespace=ns)(task_subscribe)

    @sio.on("task_unsubscribe", namespace=ns)
    async def task_unsubscribe(sid, task_id=None, *a):
        sio.leave_room(sid, f"task_progress:{task_id}", namespace=ns)

    @sio.on("doc_subscribe", namespace=ns)
    async def doc_subscribe(sid, doctype=None, docname=None, *a):
        await join_if(sid, f"doc:{doctype}/{docname}", doctype, docname)

    @sio.on("doc_unsubscribe", namespace=ns)
    async def doc_unsubscribe(sid, doctype=None, docname=None, *a):
        sio.leave_room(sid, f"doc:{doctype}/{docname}", namespace=ns)

    @sio.on("doc_open", namespace=ns)
    async def doc_open(sid, doctype=None, docname=None, *a):
        s = await join_if(sid, open_doc_room(doctype, docname), doctype, docname)
        if s and open_doc_room(doctype, docname) in sio.rooms(sid, namespace=ns):
            s["open_docs"].append((doctype, docname))
            await notify_doc_viewers(ns, sid, s["user"], doctype, docname)

    @sio.on("doc_close", namespace=ns)
    async def doc_close(sid, doctype=None, docname=None, *a):
        s = await sess(sid)
        if not s:
            return
        sio.leave_room(sid, open_doc_room(doctype, docname), namespace=ns)
        s["open_docs"] = [d for d in s["open_docs"] if d != (doctype, docname)]
        await notify_doc_viewers(ns, sid, s["user"], doctype, docname)

    @sio.on("disconnect", namespace=ns)
    async def disconnect(sid):
        s = await sess(sid)
        if s:
            for doctype, docname in s["open_docs"]:
                await notify_doc_viewers(ns, sid, s["user"], doctype, docname)


async def bridge():
    """Redis `events` -> rooms, as frappe/realtime/bridge.py."""
    r = aioredis.from_url(conf.get("redis_queue", "redis://127.0.0.1:11000"))
    while True:
        try:
            pubsub = r.pubsub()
            await pubsub.subscribe("events")
            async for item in pubsub.listen():
                if item.get("type") != "message":
                    continue
                try:
                    msg = json.loads(item["data"])
                except ValueError:
                    continue
                if not msg:
                    continue
                if msg.get("room"):
                    if msg.get("namespace"):
                        await sio.emit(msg["event"], msg.get("message"), room=msg["room"], namespace="/" + msg["namespace"])
                else:
                    for ns in list(sio.manager.rooms):
                        await sio.emit(msg["event"], msg.get("message"), namespace=ns)
        except (aioredis.ConnectionError, OSError) as e:
            print("redis:", e, file=sys.stderr)
            await asyncio.sleep(1)


async def main():
    global http
    sites = os.path.join(conf["bench"], "sites")
    for name in sorted(os.listdir(sites)):
        if os.path.isdir(os.path.join(sites, name)) and os.path.exists(os.path.join(sites, name, "site_config.json")):
            wire("/" + name)  # python-socketio 5.7 has no catch-all namespace: one per site
    http = httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=256, max_keepalive_connections=64))
    bridge_task = asyncio.get_running_loop().create_task(bridge())  # keep a reference: tasks are weakly held
    config = uvicorn.Config(app, host="0.0.0.0", port=int(conf["socketio_port"]), log_level="warning",
                            ws="websockets", lifespan="off", timeout_keep_alive=5, backlog=4096)
    server = uvicorn.Server(config)
    print(f"Realtime service listening on: {conf['socketio_port']}", flush=True)
    await server.serve()
    bridge_task.cancel()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
