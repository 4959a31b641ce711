"""Apps' realtime/handlers.js through python-socketio clients (issue 9):
the fixture app tests/fixtures/apps/fullapi answers acks, relays to rooms
and sends binary, over polling and websocket.

Run: PYTHONPATH=clients/python /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/python/test_handlers_js_python.py
"""

import queue
import sys
from pathlib import Path

import pytest
import socketio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lib"))

from procs import FakeFrappe, Realtimed, RedisServer, free_port, make_bench  # noqa: E402

SITE = "site1.local"
NS = "/" + SITE
FIX = ROOT / "tests" / "fixtures" / "apps"
APPS = ["frappe", "fullapi", "withdep"]
USERS = {
    "alice@x": {"user_type": "System User", "sids": ["sid-alice"], "apps": APPS, "doctypes": ["ToDo"]},
    "bob@x": {"user_type": "System User", "tokens": ["token kb:sb"], "apps": APPS},
}


@pytest.fixture(scope="module")
def stack():
    with RedisServer() as redis, FakeFrappe(config={"users": USERS}) as fake:
        port = free_port()
        bench = make_bench(
            common_site_config={"redis_queue": redis.url, "webserver_port": fake.port, "socketio_port": port},
            sites=[SITE], apps={a: str(FIX / a) for a in APPS})
        rt = Realtimed(["--webserver-host", "127.0.0.1"], cwd=bench, port=port)
        try:
            rt.wait_for_line(r"node host ready", timeout=10)
            yield {"rt": rt, "url": rt.url, "port": port}
        finally:
            rc = rt.stop()
            assert rc == 0, f"realtimed exited {rc}; output:\n{rt.output()}"


def client(stack, transports, cookie=None, authorization=None):
    sio = socketio.Client(reconnection=False)
    got = {}

    def q(event):
        if event not in got:
            got[event] = queue.Queue()
            sio.on(event, lambda *args: got[event].put(list(args)), namespace=NS)
        return got[event]

    for e in ("pong", "relayed", "bin_back", "typers"):
        q(e)
    headers = {"Origin": f"http://127.0.0.1:{stack['port']}", "X-Frappe-Site-Name": SITE}
    if cookie:
        headers["Cookie"] = cookie
    if authorization:
        headers["Authorization"] = authorization
    sio.connect(stack["url"], headers=headers, transports=transports, namespaces=[NS], wait_timeout=5)
    return sio, q


@pytest.mark.parametrize("transports", [["polling"], ["websocket"]])
def test_acks_rooms_binary(stack, transports):
    a, aq = client(stack, transports, cookie="sid=sid-alice")
    b, bq = client(stack, transports, authorization="token kb:sb")
    try:
        # acks: the handler's callback answers call()
        assert a.call("echo_ack", (1, "x"), namespace=NS, timeout=5) == {"got": [1, "x"], "user": "alice@x"}
        who = b.call("whoami", namespace=NS, timeout=5)
        assert who["user"] == "bob@x" and who["authorization_header"] == "token kb:sb"
        # an npm dependency of the app
        assert a.call("pad", "py", namespace=NS, timeout=5) == "******py"
        # two pongs: frappe's and the app's
        a.emit("ping", namespace=NS)
        assert sorted([aq("pong").get(timeout=5), aq("pong").get(timeout=5)]) == [[], ["fullapi"]]
        # rooms: to(room) reaches the other member, not the sender
        assert a.call("join_room", "py-room", namespace=NS, timeout=5) is True
        assert b.call("join_room", "py-room", namespace=NS, timeout=5) is True
        a.emit("relay", ("py-room", {"k": 1}), namespace=NS)
        assert bq("relayed").get(timeout=5) == [{"k": 1}, "alice@x"]
        with pytest.raises(queue.Empty):
            aq("relayed").get(timeout=0.3)
        # binary both ways
        a.emit("bin", b"\x00\x01\xff", namespace=NS)
        buf, obj = aq("bin_back").get(timeout=5)
        assert buf == b"\x00\x01\xff" and obj == {"inner": b"\x01\x02\x03"}
    finally:
        a.disconnect()
        b.disconnect()
