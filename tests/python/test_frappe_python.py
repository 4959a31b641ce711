"""Frappe mode end to end from Python (issue "Frappe drop-in", point 6.7).

python-socketio 5.x clients connect to realtimed like a Frappe mobile/token
client would (headers over polling and websocket), and events are published
through the publishing library in clients/python (realtimed.Publisher):
this is the end-to-end test of that library through the server.

Run: PYTHONPATH=clients/python /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/python/test_frappe_python.py
"""

import queue
import sys
from pathlib import Path

import pytest
import socketio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lib"))
sys.path.insert(0, str(ROOT / "clients" / "python"))

from procs import FakeFrappe, Realtimed, RedisServer, free_port, make_bench, wait_for  # noqa: E402
from realtimed import Publisher  # noqa: E402

SITE1 = "site1.local"
SITE2 = "site2.local"
NS = "/" + SITE1
QUIET = 0.3
USERS = {
    "alice@x": {"user_type": "System User", "sids": ["sid-alice"], "tokens": ["token k1:s1"],
                "doctypes": ["ToDo"]},
    "web@x": {"user_type": "Website User", "sids": ["sid-web"], "tokens": ["token kw:sw"]},
}


@pytest.fixture(scope="module")
def stack():
    """redis + fake Frappe + realtimed; realtimed must exit 0 on SIGTERM at the end."""
    with RedisServer() as redis, FakeFrappe(config={"users": USERS}) as fake:
        port = free_port()
        bench = make_bench(
            common_site_config={"redis_queue": redis.url, "webserver_port": fake.port, "socketio_port": port},
            sites=[SITE1, SITE2])
        rt = Realtimed(["--webserver-host", "127.0.0.1"], cwd=bench, port=port)
        try:
            yield {"redis": redis, "fake": fake, "rt": rt, "url": rt.url, "port": port}
        finally:
            rc = rt.stop()
            assert rc == 0, f"realtimed exited {rc}; output:\n{rt.output()}"


@pytest.fixture
def fake(stack):
    stack["fake"].reset()
    stack["fake"].config({"users": USERS})
    return stack["fake"]


@pytest.fixture
def publisher(stack):
    p = Publisher(stack["redis"].url, site=SITE1)
    yield p
    p.close()


class Client:
    """A socketio.Client on one site namespace, recording events in queues."""

    def __init__(self, stack, site=SITE1, cookie="sid=sid-alice", authorization=None, origin=None,
                 transports=None, xsite=None, events=()):
        self.ns = "/" + site
        self.sio = socketio.Client(reconnection=False)
        self.queues = {}
        self.errors = queue.Queue()
        self.sio.on("connect_error", lambda data: self.errors.put(data), namespace=self.ns)
        self.headers = {"Origin": origin or f"http://127.0.0.1:{stack['port']}",
                        "X-Frappe-Site-Name": xsite or site}
        if cookie:
            self.headers["Cookie"] = cookie
        if authorization:
            self.headers["Authorization"] = authorization
        self.url = stack["url"]
        self.transports = transports
        for e in ("pong", *events):  # handlers before anything can arrive
            self.q(e)

    def q(self, event):
        if event not in self.queues:
            self.queues[event] = queue.Queue()
            self.sio.on(event, lambda *args: self.queues[event].put(list(args)), namespace=self.ns)
        return self.queues[event]

    def connect(self):
        self.sio.connect(self.url, headers=self.headers, transports=self.transports,
                         namespaces=[self.ns], wait_timeout=5)
        return self

    def connect_error(self):
        """Connects without waiting for the namespace; returns the CONNECT_ERROR data."""
        self.sio.connect(self.url, headers=self.headers, transports=self.transports,
                         namespaces=[self.ns], wait=False)
        return self.errors.get(timeout=5)

    def get(self, event, timeout=5.0):
        assert event in self.queues, f"register {event!r} before it can arrive"
        return self.queues[event].get(timeout=timeout)

    def nothing(self, event, wait=QUIET):
        assert event in self.queues, f"register {event!r} before it can arrive"
        try:
            got = self.queues[event].get(timeout=wait)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected {event}: {got}")

    def emit(self, event, *args):
        if not args:
            self.sio.emit(event, namespace=self.ns)
        elif len(args) == 1:
            self.sio.emit(event, args[0], namespace=self.ns)
        else:
            self.sio.emit(event, args, namespace=self.ns)  # a tuple: several arguments

    def round_trip(self):
        pong = self.q("pong")
        self.sio.emit("ping", namespace=self.ns)
        assert pong.get(timeout=5) == []

    def close(self):
        self.sio.disconnect()


@pytest.fixture
def clients(stack):
    made = []

    def make(**kw):
        c = Client(stack, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def until_received(publish, q, timeout=5.0):
    """Publishes repeatedly until q has an item (for asynchronous joins)."""
    def attempt():
        publish()
        try:
            return q.get(timeout=0.05)
        except queue.Empty:
            return None
    return wait_for(attempt, timeout=timeout)


@pytest.mark.parametrize("transports", [None, ["polling"], ["websocket"]])
def test_cookie_connect_and_publish_realtime(stack, fake, clients, publisher, transports):
    c = clients(transports=transports, events=["x"]).connect()
    q = c.q("x")
    assert publisher.publish_realtime("x", {"a": 1}, user="alice@x") is None
    assert q.get(timeout=5) == [{"a": 1}]
    if transports:
        assert c.sio.transport() == transports[0]
    else:
        wait_for(lambda: c.sio.transport() == "websocket")
    calls = wait_for(lambda: fake.requests("get_user_info"))
    assert calls[0]["headers"]["cookie"] == "sid=sid-alice"
    assert calls[0]["headers"]["x-frappe-site-name"] == SITE1
    assert "authorization" not in calls[0]["headers"]
    c.round_trip()


def test_authorization_token(stack, fake, clients, publisher):
    c = clients(cookie="sid=Guest", authorization="token kw:sw", transports=["websocket"],
                events=["hello", "to_all"]).connect()
    calls = wait_for(lambda: fake.requests("get_user_info"))
    assert calls[0]["headers"]["authorization"] == "token kw:sw"
    assert "cookie" not in calls[0]["headers"]
    publisher.publish_realtime("hello", "web", user="web@x")
    assert c.get("hello") == ["web"]
    # a Website User is not in the `all` room (publish_realtime's default room)
    publisher.publish_realtime("to_all", {"n": 1})
    c.round_trip()
    assert c.nothing("to_all")


def test_connect_errors(stack, fake, clients):
    c = clients(origin="http://evil.example")
    assert c.connect_error() == {"message": "Invalid origin"}
    d = clients(cookie="sid=unknown", transports=["websocket"])
    assert d.connect_error() == {
        "message": "Unauthorized: TypeError: Cannot read properties of undefined (reading 'installed_apps')"}


def test_routing_of_the_library(stack, fake, clients, publisher):
    a = clients(events=["evt", "doc_update", "list_update", "site_wide"]).connect()
    a2 = clients(site=SITE2, events=["evt"]).connect()
    # default room: all (System Users of the site)
    publisher.publish_realtime("evt", [1, 2])
    assert a.get("evt") == [[1, 2]]
    # another site through site=
    publisher.publish_realtime("evt", "two", user="alice@x", site=SITE2)
    assert a2.get("evt") == ["two"]
    assert a.nothing("evt")
    # doc room (needs doc_subscribe, with a permission check)
    q = a.q("doc_update")
    a.emit("doc_subscribe", "ToDo", "T/1 x é")
    got = until_received(lambda: publisher.publish_realtime(
        "doc_update", {"name": "T/1 x é"}, doctype="ToDo", docname="T/1 x é"), q)
    assert got == [{"name": "T/1 x é"}]
    # list_update is forced to the doctype room
    q = a.q("list_update")
    a.emit("doctype_subscribe", "ToDo")
    got = until_received(lambda: publisher.publish_realtime(
        "list_update", {"doctype": "ToDo", "name": "T-9"}, room="ignored"), q)
    assert got == [{"doctype": "ToDo", "name": "T-9"}]
    # sugar: website room
    publisher.publish_to_website("site_wide", {"w": True})
    assert a.get("site_wide") == [{"w": True}]


def test_publish_progress(stack, fake, clients):
    a = clients(events=["progress", "task_progress"]).connect()
    p = Publisher(stack["redis"].url, site=SITE1, session_user="alice@x")
    try:
        p.publish_progress(25, title="Importing", description="row 1")
        assert a.get("progress") == [{"percent": 25, "title": "Importing", "description": "row 1"}]
        # doc room when doctype and docname are given
        a.emit("doc_subscribe", "ToDo", "P-1")
        q = a.q("progress")
        got = until_received(lambda: p.publish_progress(50, title="Doc", doctype="ToDo", docname="P-1"), q)
        assert got == [{"percent": 50, "title": "Doc", "description": None}]
        # task routing wins: task_progress:<id>, message gets task_id
        a.emit("task_subscribe", "job-7")
        a.round_trip()
        p.publish_progress(75, title="Job", task_id="job-7")
        got = a.get("progress")
        while got[0]["percent"] == 50:  # extra copies from until_received
            got = a.get("progress")
        assert got == [{"percent": 75, "title": "Job", "description": None, "task_id": "job-7"}]
        p.publish_realtime(message={"step": 2}, task_id="job-7")
        assert a.get("task_progress") == [{"step": 2, "task_id": "job-7"}]
    finally:
        p.close()


def test_after_commit(stack, fake, clients, publisher):
    a = clients(events=["committed"]).connect()
    q = a.q("committed")
    with publisher.transaction():
        publisher.publish_realtime("committed", {"n": 1}, user="alice@x", after_commit=True)
        publisher.publish_realtime("committed", {"n": 1}, user="alice@x", after_commit=True)  # duplicate
        publisher.publish_realtime("committed", {"n": 2}, user="alice@x", after_commit=True)
        assert a.nothing("committed"), "buffered until commit"
    assert q.get(timeout=5) == [{"n": 1}]
    assert q.get(timeout=5) == [{"n": 2}]
    assert a.nothing("committed"), "duplicates are skipped"

    with pytest.raises(RuntimeError):
        with publisher.transaction():
            publisher.publish_realtime("committed", {"n": 3}, user="alice@x", after_commit=True)
            raise RuntimeError("rollback")
    # published after the failed transaction: only this one arrives
    publisher.publish_realtime("committed", {"n": 4}, user="alice@x")
    assert q.get(timeout=5) == [{"n": 4}]
    assert a.nothing("committed")

    # task events ignore after_commit
    a.emit("task_subscribe", "t-1")
    a.round_trip()
    with publisher.transaction():
        publisher.publish_realtime("committed", {"n": 5}, task_id="t-1", after_commit=True)
        assert q.get(timeout=5) == [{"n": 5, "task_id": "t-1"}]


def test_presence_two_tabs(stack, fake, clients):
    """Two tabs of one user (cookie and token) in doc_viewers."""
    a = clients(events=["doc_viewers", "probe"]).connect()
    w = clients(cookie=None, authorization="token k1:s1", transports=["websocket"], events=["doc_viewers"]).connect()
    va, vw = a.q("doc_viewers"), w.q("doc_viewers")
    a.emit("doc_open", "ToDo", "V-1")
    until_received(lambda: stack["redis"].publish(
        "events", {"event": "probe", "message": 1, "room": "open_doc:ToDo/V-1", "namespace": SITE1}), a.q("probe"))
    w.emit("doc_open", "ToDo", "V-1")
    assert va.get(timeout=5) == [{"doctype": "ToDo", "docname": "V-1", "users": ["alice@x"]}]
    assert vw.get(timeout=5) == [{"doctype": "ToDo", "docname": "V-1", "users": ["alice@x"]}]
    # the other tab leaves: only alice's own tab remains, so nothing is sent
    w.close()
    assert a.nothing("doc_viewers")
