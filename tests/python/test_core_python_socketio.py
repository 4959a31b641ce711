"""The core with the official Python client (Debian python3-socketio 5.7.x,
unchanged) against `realtimed --conformance`: both transports and the
upgrade, namespaces, the auth echo, call() acks both ways, binary, UTF-8,
rooms between two Python clients, middleware refusal and disconnects. The
last test stops the server with SIGTERM and requires exit code 0."""
import json
import queue
import urllib.error
import urllib.request
from importlib.metadata import version
import sys
from pathlib import Path

import pytest
import socketio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from procs import Realtimed, free_port, wait_for  # noqa: E402

T = 10  # seconds, generous (the suite also runs under ASan/valgrind)
TRANSPORTS = [["polling"], ["websocket"], None]  # None: polling, then upgrade
IDS = ["polling", "websocket", "upgrade"]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    rt = Realtimed(["--conformance", "--port", port, "--ping-interval", "400",
                    "--ping-timeout", "10000", "--connect-timeout", "10000",
                    "--log-level", "warning"])
    yield rt
    rt.stop()


class Client:
    """socketio.Client whose events land in per-(namespace, event) queues."""

    def __init__(self, url, transports=None, namespaces=None, auth=None, events=(), wait_timeout=5):
        self.sio = socketio.Client(reconnection=False)
        self.queues = {}
        self.disconnects = queue.Queue()
        self.errors = queue.Queue()
        namespaces = namespaces or ["/"]
        for ns in namespaces:
            for ev in ("auth", "message-back", "ack-result", *events):
                self.sio.on(ev, self._catcher(ns, ev), namespace=ns)
            self.sio.on("disconnect", lambda ns=ns: self.disconnects.put(ns), namespace=ns)
            self.sio.on("connect_error", lambda data, ns=ns: self.errors.put((ns, data)), namespace=ns)
        self.sio.connect(url, transports=transports, namespaces=namespaces, auth=auth,
                         wait_timeout=wait_timeout)

    def _catcher(self, ns, ev):
        q = self.queues.setdefault((ns, ev), queue.Queue())
        return lambda *args: q.put(list(args))

    def next(self, ev, ns="/", timeout=T):
        return self.queues[(ns, ev)].get(timeout=timeout)

    def empty(self, ev, ns="/"):
        return self.queues[(ns, ev)].empty()

    def call(self, ev, *args, ns="/"):
        return self.sio.call(ev, args, namespace=ns, timeout=T)

    def close(self):
        if self.sio.connected:
            self.sio.disconnect()


def server_url(c):
    return c.sio.connection_url


def session_gone(url, sid):
    try:
        urllib.request.urlopen(f"{url}/socket.io/?EIO=4&transport=polling&sid={sid}", timeout=T)
    except urllib.error.HTTPError as e:
        return e.code == 400 and json.load(e) == {"code": 1, "message": "Session ID unknown"}
    return False


@pytest.fixture
def clients(server):
    made = []

    def make(**kw):
        c = Client(server.url, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def test_client_version():
    # Written against python-socketio 5.7.2 / python-engineio 4.3.4 (Debian
    # bookworm): Socket.IO v5 / Engine.IO v4; call() returns a tuple for
    # several ack arguments.
    assert version("python-socketio").split(".")[0] == "5"
    assert version("python-engineio").split(".")[0] == "4"


@pytest.mark.parametrize("transports", TRANSPORTS, ids=IDS)
def test_connect_events_and_acks(clients, transports):
    c = clients(transports=transports)
    assert c.next("auth") == [{}]
    if transports is None:
        wait_for(lambda: c.sio.transport() == "websocket", T)
    else:
        assert c.sio.transport() == transports[0]
    c.sio.emit("message", (1, "2", {"3": [True]}))
    assert c.next("message-back") == [1, "2", {"3": [True]}]
    assert c.call("message-with-ack", 1, "2", {"3": [False]}) == (1, "2", {"3": [False]})
    assert c.call("message-with-ack", "one") == "one"
    assert c.call("message-with-ack") is None
    c.close()
    assert c.disconnects.get(timeout=T) == "/"


@pytest.mark.parametrize("transports", TRANSPORTS, ids=IDS)
def test_auth_payload_echo(clients, transports):
    auth = {"token": "123", "n": 1, "nested": {"a": [1, None, True]}, "s": "é€😀"}
    c = clients(transports=transports, auth=auth)
    assert c.next("auth") == [auth]


@pytest.mark.parametrize("transports", TRANSPORTS, ids=IDS)
def test_namespaces_multiplexed(clients, transports):
    c = clients(transports=transports, namespaces=["/", "/custom", "/dyn-py"], auth={"k": "v"})
    for ns in ("/", "/custom", "/dyn-py"):
        assert c.next("auth", ns) == [{"k": "v"}]
    c.sio.emit("message", "to custom", namespace="/custom")
    c.sio.emit("message", "to main")
    assert c.next("message-back", "/custom") == ["to custom"]
    assert c.next("message-back", "/") == ["to main"]
    assert c.call("message-with-ack", "dyn", ns="/dyn-py") == "dyn"
    assert c.empty("message-back", "/dyn-py")


@pytest.mark.parametrize("transports", TRANSPORTS, ids=IDS)
def test_binary_both_ways(clients, transports):
    c = clients(transports=transports)
    blob = bytes(range(256)) * 40
    args = (b"\x00\x01\x02", {"nested": {"b": b"yy", "list": [b"", "s", b"\xff"]}}, "text", blob)
    c.sio.emit("message", args)
    assert c.next("message-back") == list(args)
    assert c.call("message-with-ack", *args) == args
    assert c.call("message-with-ack", b"only") == b"only"


@pytest.mark.parametrize("transports", TRANSPORTS, ids=IDS)
def test_utf8(clients, transports):
    s = "é€😀 ünïcödé \u2028 \"q\" \\"
    c = clients(transports=transports)
    c.sio.emit("message", (s, {s: [s * 500]}))
    assert c.next("message-back") == [s, {s: [s * 500]}]
    assert c.call("message-with-ack", s) == s


@pytest.mark.parametrize("transports", TRANSPORTS, ids=IDS)
def test_server_to_client_ack(clients, transports):
    c = clients(transports=transports)
    c.sio.on("ack-request", lambda *args: ({"got": list(args)}, b"\x01\x02", "é"))
    c.sio.emit("request-ack", ("q", 42))
    assert c.next("ack-result") == [{"got": ["q", 42]}, b"\x01\x02", "é"]


@pytest.mark.parametrize("transports", TRANSPORTS, ids=IDS)
def test_rooms_between_two_python_clients(clients, transports):
    a = clients(transports=transports, events=("news",))
    b = clients(transports=["websocket"], events=("news",))
    third = clients(transports=["polling"], events=("news",))
    assert a.call("join", "pyroom") is None
    assert third.call("join", "other") is None
    assert b.call("broadcast", "pyroom", "news", {"x": 1}, "é") is None
    assert a.next("news") == [{"x": 1}, "é"]
    # Union of rooms, each member once; the sender is excluded even if a member.
    assert b.call("join", "pyroom") is None
    assert b.call("broadcast", ["pyroom", "other", "pyroom"], "news", 2) is None
    assert a.next("news") == [2]
    assert third.next("news") == [2]
    # Fence: a message to all three, from a, then check nobody got extras.
    assert third.call("join", "pyroom") is None
    assert a.call("broadcast", "pyroom", "news", "fence") is None
    assert b.next("news") == ["fence"]
    assert third.next("news") == ["fence"]
    assert a.empty("news") and b.empty("news") and third.empty("news")
    # After leaving, a gets nothing.
    assert a.call("leave", "pyroom") is None
    assert b.call("broadcast", "pyroom", "news", 3) is None
    assert third.next("news") == [3]
    assert b.call("broadcast", [], "news", 4) is None  # no rooms: the whole namespace
    assert a.next("news") == [4]
    assert third.next("news") == [4]
    assert a.empty("news")


def test_private_accepts_the_right_token(clients):
    c = clients(transports=["websocket"], namespaces=["/private"], auth={"token": "secret"})
    assert c.next("auth", "/private") == [{"token": "secret"}]
    assert c.call("message-with-ack", "in", ns="/private") == "in"


@pytest.mark.parametrize("transports", [["polling"], ["websocket"]], ids=IDS[:2])
def test_private_rejects_with_message_and_data(server, transports):
    errors = queue.Queue()
    sio = socketio.Client(reconnection=False)
    sio.on("connect_error", lambda data: errors.put(data), namespace="/private")
    with pytest.raises(socketio.exceptions.ConnectionError):
        sio.connect(server.url, transports=transports, namespaces=["/private"],
                    auth={"token": "wrong"}, wait_timeout=2)
    assert errors.get(timeout=T) == {"message": "Unauthorized", "data": {"reason": "bad token"}}
    assert not sio.connected
    sio.disconnect()


def test_unknown_namespace_is_refused(server):
    errors = queue.Queue()
    sio = socketio.Client(reconnection=False)
    sio.on("connect_error", lambda data: errors.put(data), namespace="/random")
    with pytest.raises(socketio.exceptions.ConnectionError):
        sio.connect(server.url, transports=["websocket"], namespaces=["/random"], wait_timeout=2)
    assert errors.get(timeout=T) == {"message": "Invalid namespace"}
    sio.disconnect()


@pytest.mark.parametrize("transports", TRANSPORTS, ids=IDS)
def test_server_disconnect(clients, transports):
    c = clients(transports=transports, namespaces=["/", "/custom"])
    c.sio.emit("disconnect-me", namespace="/custom")
    assert c.disconnects.get(timeout=T) == "/custom"
    assert c.call("message-with-ack", "main alive") == "main alive"
    c.sio.emit("disconnect-me")
    assert c.disconnects.get(timeout=T) == "/"
    wait_for(lambda: not c.sio.connected, T)


@pytest.mark.parametrize("transports", [["polling"], ["websocket"]], ids=IDS[:2])
def test_close_session(clients, transports):
    c = clients(transports=transports, namespaces=["/", "/custom"])
    c.sio.emit("close-session")
    got = {c.disconnects.get(timeout=T), c.disconnects.get(timeout=T)}
    assert got == {"/", "/custom"}
    wait_for(lambda: not c.sio.connected, T)


def test_client_disconnect_leaves_rooms(clients):
    a = clients(transports=["polling"], events=("news",))
    # websocket: its disconnect() closes the socket at once, whereas over
    # polling python-engineio 4.3 may drop the queued close packet and leave
    # the server to notice at the ping timeout.
    b = clients(transports=["websocket"], events=("news",))
    sender = clients(transports=["websocket"])
    a.call("join", "bye")
    b.call("join", "bye")
    sid = b.sio.eio.sid
    b.close()  # returns before the server has seen it: wait for the session to end
    wait_for(lambda: session_gone(server_url(a), sid), T)
    sender.call("broadcast", "bye", "news", 1)
    assert a.next("news") == [1]
    assert b.empty("news")


def test_zz_sigterm_exits_0(server, clients):
    c = clients(transports=["websocket"])
    p = clients(transports=["polling"])
    assert c.call("message-with-ack", 1) == 1
    assert p.call("message-with-ack", 2) == 2
    rc = server.stop(kill_after=15)
    assert rc == 0, server.output()
    assert c.disconnects.get(timeout=T) == "/"
    assert p.disconnects.get(timeout=T) == "/"
    out = server.output()
    assert "AddressSanitizer" not in out and "LeakSanitizer" not in out and "runtime error" not in out


@pytest.mark.parametrize("transports", TRANSPORTS, ids=IDS)
def test_ipv6_and_gzip(transports):
    """python-socketio over [::1] (the listener is dual-stack), with a 5 kB
    echo: over polling it comes back gzip'd (requests asks for it and
    decodes it). Its own server: the module's is stopped by the SIGTERM test."""
    rt = Realtimed(["--conformance", "--port", free_port(), "--ping-interval", "5000",
                    "--ping-timeout", "10000", "--connect-timeout", "10000", "--log-level", "warning"])
    try:
        url = rt.url.replace("127.0.0.1", "[::1]")
        c = Client(url, transports=transports)
        try:
            text = "é" * 2500
            c.sio.emit("message", text)
            assert c.next("message-back") == [text]
        finally:
            c.close()
        with urllib.request.urlopen(f"{rt.url}/metrics", timeout=T) as r:
            metrics = r.read().decode()
    finally:
        rt.stop()
    if transports == ["polling"]:
        line = next(l for l in metrics.splitlines() if l.startswith("realtimed_http_compressed_total "))
        assert int(line.split()[1]) >= 1, metrics
