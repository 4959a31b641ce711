"""The standalone mode with the official Python client (python3-socketio)
and the realtimed package's API client and token helper: a token minted in
Python admits the client (both transports), the API publishes to its user
room and to a room it is joined to, errors surface as ApiError."""
import os
import queue
import sys
import tempfile
from pathlib import Path

import pytest
import socketio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from procs import Realtimed, free_port  # noqa: E402

from realtimed.api import ApiClient, ApiError, mint_token  # noqa: E402

T = 10
SECRET = b"python-side-secret-0123456789"


@pytest.fixture(scope="module")
def server():
    d = tempfile.mkdtemp(prefix="realtimed-py-standalone-")
    key = Path(d, "hs.key")
    key.write_bytes(SECRET + b"\n")
    keys = Path(d, "api.keys")
    keys.write_text("py-api-key\n")
    port = free_port()
    rt = Realtimed(["--auth-mode", "jwt", "--jwt-key", key, "--api-key-file", keys, "--port", port,
                    "--namespaces", "/,/chat", "--log-level", "warning"], cwd=d)
    yield rt
    rt.stop()


def connect(url, token, transports, namespace="/"):
    got = queue.Queue()
    c = socketio.Client(reconnection=False)
    c.on("news", lambda *a: got.put(a), namespace=namespace)
    c.connect(url, auth={"token": token}, transports=transports, namespaces=[namespace], wait_timeout=T)
    return c, got


@pytest.mark.parametrize("transports", [["polling"], ["websocket"]], ids=["polling", "websocket"])
def test_token_admits_and_the_api_publishes(server, transports):
    api = ApiClient(server.url, "py-api-key")
    c, got = connect(server.url, mint_token(SECRET, "pat", rooms=["team"]), transports)
    try:
        api.publish("news", {"n": 1}, room="user:pat")
        assert got.get(timeout=T) == ({"n": 1},)
        api.publish("news", args=[2, "two"], room="team")
        assert got.get(timeout=T) == (2, "two")
        api.join("extra", user="pat")
        assert api.room("extra") == {"sockets": 1, "users": ["pat"], "info": {}}
        api.publish("news", 3, rooms=["extra"], except_="team")
        api.publish("news", 4)
        assert got.get(timeout=T) == (4,)  # 3 was excepted
    finally:
        c.disconnect()


def test_refused_tokens_and_api_errors(server):
    for token, message in [(mint_token(b"wrong", "x"), "invalid token"),
                           (mint_token(SECRET, "x", ttl=-100), "token expired")]:
        c = socketio.Client(reconnection=False)
        errors = []
        c.on("connect_error", lambda data: errors.append(data))
        with pytest.raises(socketio.exceptions.ConnectionError):
            c.connect(server.url, auth={"token": token}, transports=["websocket"], wait_timeout=T)
        assert errors and message in str(errors[0]), errors
    with pytest.raises(ApiError) as e:
        ApiClient(server.url, "bad-key").publish("news", 1)
    assert e.value.status == 401 and e.value.message == "unauthorized"
    with pytest.raises(ApiError) as e:
        ApiClient(server.url, "py-api-key").publish("news", 1, namespace="/nope")
    assert e.value.status == 400 and e.value.message == "unknown namespace"
    with pytest.raises(ApiError) as e:
        ApiClient(f"http://127.0.0.1:{free_port()}", "k", timeout=2).publish("news", 1)
    assert e.value.status == 0


def test_namespaced_client_and_disconnect(server):
    api = ApiClient(server.url, "py-api-key")
    c, got = connect(server.url, mint_token(SECRET, "quinn"), ["websocket"], namespace="/chat")
    try:
        api.publish("news", "hello", namespace="/chat", room="user:quinn")
        assert got.get(timeout=T) == ("hello",)
        assert api.disconnect(user="quinn", namespace="/chat") == {"ok": True, "sockets": 1}
    finally:
        c.disconnect()
