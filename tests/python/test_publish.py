"""Tests for the Python publishing library (clients/python/realtimed).

Run: PYTHONPATH=clients/python /usr/bin/python3 -m pytest -q tests/python/test_publish.py

A private redis-server (free port + Unix socket, no persistence) is started
for the session; every test subscribes to `events` and checks the exact
text that was published.
"""

import datetime
import decimal
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT_DIR = os.path.join(ROOT, "clients", "python")
sys.path.insert(0, CLIENT_DIR)

import realtimed  # noqa: E402
from realtimed import Publisher  # noqa: E402
from realtimed.config import ConfigError, find_bench, redact_url  # noqa: E402

SITE = "site1.local"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, workdir):
        self.port = free_port()
        self.sock = os.path.join(workdir, "redis.sock")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", workdir, "--unixsocket", self.sock,
             "--unixsocketperm", "700", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{self.port}"
        deadline = time.time() + 10
        while True:
            try:
                if redis.Redis(port=self.port, socket_timeout=0.5).ping() and os.path.exists(self.sock):
                    break
            except redis.ConnectionError:
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    srv = RedisServer(str(tmp_path_factory.mktemp("redis")))
    yield srv
    srv.stop()


class Subscriber:
    def __init__(self, url):
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.ps = self.client.pubsub()
        self.ps.subscribe("events")
        deadline = time.time() + 5
        while time.time() < deadline:  # wait for the subscribe confirmation
            msg = self.ps.get_message(timeout=0.5)
            if msg and msg["type"] == "subscribe":
                return
        raise RuntimeError("no subscribe confirmation")

    def raw(self, n=1, timeout=3.0):
        out, deadline = [], time.time() + timeout
        while len(out) < n and time.time() < deadline:
            msg = self.ps.get_message(timeout=0.2)
            if msg and msg["type"] == "message":
                out.append(msg["data"])
        assert len(out) == n, f"expected {n} message(s), got {out!r}"
        return out

    def one(self):
        return json.loads(self.raw(1)[0])

    def many(self, n):
        return [json.loads(r) for r in self.raw(n)]

    def nothing(self, wait=0.3):
        msg = self.ps.get_message(timeout=wait)
        while msg is not None and msg["type"] != "message":
            msg = self.ps.get_message(timeout=wait)
        assert msg is None, f"unexpected message {msg!r}"

    def close(self):
        self.ps.close()
        self.client.close()


@pytest.fixture
def sub(server):
    s = Subscriber(server.url)
    yield s
    s.close()


@pytest.fixture
def pub(server):
    p = Publisher(server.url, site=SITE)
    yield p
    p.close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ("REALTIMED_BENCH", "FRAPPE_BENCH_ROOT", "FRAPPE_REDIS_QUEUE", "FRAPPE_SITE"):
        monkeypatch.delenv(var, raising=False)
    yield
    realtimed.configure()


def env(event, message, room, namespace=SITE):
    return {"event": event, "message": message, "room": room, "namespace": namespace}


# --------------------------------------------------------------------------
# Wire format


def test_exact_wire_text_of_default_event(pub, sub):
    pub.publish_realtime()
    assert sub.raw() == ['{\n "event": "global",\n "message": {},\n "namespace": "site1.local",\n'
                         ' "room": "all"\n}']


def test_wire_text_sorted_indented_ascii_escaped(pub, sub):
    pub.publish_realtime("ev", {"b": 1, "a": ["é", None, True]}, room="r")
    assert sub.raw() == ['{\n "event": "ev",\n "message": {\n  "a": [\n   "\\u00e9",\n   null,\n'
                         '   true\n  ],\n  "b": 1\n },\n "namespace": "site1.local",\n "room": "r"\n}']


def test_json_handler_types(pub, sub):
    msg = {
        "dt": datetime.datetime(2024, 5, 6, 7, 8, 9, 123),
        "d": datetime.date(2024, 5, 6),
        "t": datetime.time(13, 14),
        "td": datetime.timedelta(days=1, hours=2, minutes=3, seconds=4),
        "td2": datetime.timedelta(seconds=1.5),
        "dec": decimal.Decimal("12.50"),
        "set": {3},
        "tup": (1, 2),
        "uuid": uuid.UUID(int=1),
    }
    pub.publish_realtime("ev", msg, room="r")
    got = sub.one()["message"]
    assert got == {
        "dt": "2024-05-06 07:08:09.000123", "d": "2024-05-06", "t": "13:14:00",
        "td": "26:03:04", "td2": "0:00:1.5", "dec": 12.5, "set": [3], "tup": [1, 2],
        "uuid": "00000000-0000-0000-0000-000000000001",
    }


def test_mixed_key_types_fall_back_like_frappe():
    text = realtimed.as_json({"b": {1: "x", "a": "y"}, "a": 1})
    assert text == '{\n "a": 1,\n "b": {\n  "1": "x",\n  "a": "y"\n }\n}'


def test_unserializable_message_raises_type_error(pub, sub):
    with pytest.raises(TypeError):
        pub.publish_realtime("ev", {"x": object()})
    with pub.transaction(), pytest.raises(TypeError):
        pub.publish_realtime("ev", {"x": object()}, after_commit=True)
    sub.nothing()


def test_non_object_messages(pub, sub):
    pub.publish_realtime("eval_js", "frappe.msgprint('hi')", user="a@x")
    pub.publish_realtime("ev", [1, "two"], room="r")
    assert sub.many(2) == [env("eval_js", "frappe.msgprint('hi')", "user:a@x"),
                           env("ev", [1, "two"], "r")]


# --------------------------------------------------------------------------
# Routing rules (frappe.publish_realtime)


def test_room_helpers():
    assert realtimed.get_doctype_room("ToDo") == "doctype:ToDo"
    assert realtimed.get_doc_room("Sales Invoice", "SI/2024 01") == "doc:Sales Invoice/SI/2024 01"
    assert realtimed.get_doc_room("ToDo", None) == "doc:ToDo/"
    assert realtimed.get_doc_room("ToDo", 7) == "doc:ToDo/7"
    assert realtimed.get_user_room("a@x") == "user:a@x"
    assert realtimed.get_site_room() == "all"
    assert realtimed.get_task_progress_room("t1") == "task_progress:t1"
    assert realtimed.get_website_room() == "website"


def test_event_defaults(pub, sub):
    pub.publish_realtime(message={"x": 1})
    pub.publish_realtime(task_id="T1")
    pub.publish_realtime(message="text", task_id="T2")
    assert sub.many(3) == [
        env("global", {"x": 1}, "all"),
        env("task_progress", {"task_id": "T1"}, "task_progress:T1"),
        env("task_progress", "text", "task_progress:T2"),
    ]


def test_list_update_forces_doctype_room(pub, sub):
    pub.publish_realtime("list_update", {"doctype": "ToDo", "name": "T-1"})
    pub.publish_realtime("list_update", {"doctype": "ToDo"}, room="elsewhere", user="a@x")
    pub.publish_realtime("list_update", {"doctype": "ToDo"}, doctype="Note", task_id="T")
    pub.publish_realtime("list_update", {})
    assert sub.many(4) == [
        env("list_update", {"doctype": "ToDo", "name": "T-1"}, "doctype:ToDo"),
        env("list_update", {"doctype": "ToDo"}, "doctype:ToDo"),
        env("list_update", {"doctype": "ToDo"}, "doctype:Note"),
        env("list_update", {}, "doctype:None"),
    ]


def test_docinfo_update_forces_doc_room(pub, sub):
    pub.publish_realtime("docinfo_update", {"key": "comments"}, doctype="ToDo", docname="T-1",
                         room="elsewhere", user="a@x", task_id="T")
    pub.publish_realtime("docinfo_update", {}, doctype="ToDo")
    assert sub.many(2) == [
        env("docinfo_update", {"key": "comments"}, "doc:ToDo/T-1"),
        env("docinfo_update", {}, "doc:ToDo/"),
    ]


def test_msgprint_goes_to_session_user(server, sub):
    p = Publisher(server.url, site=SITE, session_user="sess@x")
    p.publish_realtime("msgprint", "hello")
    p.publish_realtime("msgprint", "hello", user="other@x")
    p.publish_realtime("other", "hello")  # only msgprint takes the session user
    anon = Publisher(server.url, site=SITE)
    anon.publish_realtime("msgprint", "hello")
    assert sub.many(4) == [
        env("msgprint", "hello", "user:sess@x"),
        env("msgprint", "hello", "user:other@x"),
        env("other", "hello", "all"),
        env("msgprint", "hello", "all"),
    ]


def test_routing_precedence(pub, sub):
    pub.publish_realtime("e", {}, room="r", user="u", doctype="D", docname="N", task_id="T")
    pub.publish_realtime("e", {}, user="u", doctype="D", docname="N", task_id="T")
    pub.publish_realtime("e", {}, user="u", doctype="D", docname="N")
    pub.publish_realtime("e", {}, doctype="D", docname="N")
    pub.publish_realtime("e", {}, doctype="D")  # a doctype alone falls through to `all`
    pub.publish_realtime("e", {}, docname="N")
    assert [m["room"] for m in sub.many(6)] == [
        "r", "task_progress:T", "user:u", "doc:D/N", "all", "all"]


def test_explicit_room_keeps_message_untouched(pub, sub):
    pub.publish_realtime("e", {"a": 1}, room="r", task_id="T")
    assert sub.one() == env("e", {"a": 1}, "r")


def test_task_id_fills_message(pub, sub):
    mine = {"progress": 1}
    pub.publish_realtime("e", mine, task_id="T")
    pub.publish_realtime("e", {"task_id": "kept"}, task_id="T")
    pub.publish_realtime("e", ["a"], task_id="T")
    assert sub.many(3) == [
        env("e", {"progress": 1, "task_id": "T"}, "task_progress:T"),
        env("e", {"task_id": "kept"}, "task_progress:T"),
        env("e", ["a"], "task_progress:T"),
    ]
    assert mine == {"progress": 1, "task_id": "T"}  # updated in place, as Frappe does


def test_task_id_forces_after_commit_off(pub, sub):
    with pub.transaction():
        pub.publish_realtime("e", {}, task_id="T", after_commit=True)
        assert sub.one() == env("e", {"task_id": "T"}, "task_progress:T")
        assert pub.pending == []
    sub.nothing()


def test_publisher_task_id_is_the_running_job(server, sub):
    p = Publisher(server.url, site=SITE, task_id="job-1")
    p.publish_realtime(message={"p": 1})
    p.publish_realtime("e", {}, task_id="explicit")
    assert sub.many(2) == [
        env("task_progress", {"p": 1, "task_id": "job-1"}, "task_progress:job-1"),
        env("e", {"task_id": "explicit"}, "task_progress:explicit"),
    ]


def test_session_context_override(pub, sub):
    pub.session_user = "base@x"
    with pub.session(user="req@x"):
        pub.publish_realtime("msgprint", "a")
        with pub.session(task_id="T"):
            assert pub.session_user == "req@x"
            pub.publish_realtime("msgprint", "b")
    pub.publish_realtime("msgprint", "c")
    seen = []
    t = threading.Thread(target=lambda: seen.append(pub.session_user))
    with pub.session(user="only-here@x"):
        t.start()
        t.join()
    assert seen == ["base@x"]
    assert [m["room"] for m in sub.many(3)] == ["user:req@x", "task_progress:T", "user:base@x"]


def test_resolve_is_pure_routing():
    assert realtimed.resolve() == ("global", {}, "all", False)
    assert realtimed.resolve("e", after_commit=True, user="u") == ("e", {}, "user:u", True)
    assert realtimed.resolve("e", after_commit=True, task_id="T") == (
        "e", {"task_id": "T"}, "task_progress:T", False)
    assert realtimed.resolve("msgprint", "m", session_user="s") == ("msgprint", "m", "user:s", False)


# --------------------------------------------------------------------------
# publish_progress


def test_progress_routes(server, sub):
    p = Publisher(server.url, site=SITE, session_user="sess@x")
    p.publish_progress(40, title="Import", description="row 4")
    p.publish_progress(50, doctype="Data Import", docname="DI-1")
    p.publish_progress(60, doctype="Data Import")
    p.publish_progress(70, doctype="Data Import", docname="DI-1", task_id="T")
    Publisher(server.url, site=SITE).publish_progress(80)
    body = lambda pc, title=None, desc=None: {"percent": pc, "title": title, "description": desc}  # noqa: E731
    assert sub.many(5) == [
        env("progress", body(40, "Import", "row 4"), "user:sess@x"),
        env("progress", body(50), "doc:Data Import/DI-1"),
        env("progress", body(60), "user:sess@x"),
        env("progress", dict(body(70), task_id="T"), "task_progress:T"),
        env("progress", body(80), "all"),
    ]


def test_progress_exact_text(pub, sub):
    pub.publish_progress(12.5, "T")
    assert sub.raw() == ['{\n "event": "progress",\n "message": {\n  "description": null,\n'
                         '  "percent": 12.5,\n  "title": "T"\n },\n "namespace": "site1.local",\n'
                         ' "room": "all"\n}']


# --------------------------------------------------------------------------
# Site / namespace and the develop sugar


def test_site_namespace(server, sub, caplog):
    p = Publisher(server.url, site="a.local")
    p.publish_realtime("e")
    p.publish_realtime("e", site="b.local")
    p.emit_via_redis("raw", {"x": 1}, "room-1")
    p.emit_via_redis("raw", None, None, "c.local")
    with caplog.at_level(logging.WARNING, logger="realtimed"):
        Publisher(server.url).publish_realtime("e")
    assert sub.many(5) == [
        env("e", {}, "all", "a.local"),
        env("e", {}, "all", "b.local"),
        env("raw", {"x": 1}, "room-1", "a.local"),
        env("raw", None, None, "c.local"),
        env("e", {}, "all", None),
    ]
    assert "no site" in caplog.text


def test_emit_via_redis_returns_receiver_count(pub, sub):
    assert pub.emit_via_redis("e", {}, "r") == 1
    sub.one()


def test_sugar_helpers(pub, sub):
    pub.publish_to_user("u@x", "e", {"a": 1})
    pub.publish_to_doc("ToDo", "T-1", "e")
    pub.publish_to_doctype("ToDo", "e")
    pub.publish_task_progress("T", {"p": 1})
    pub.publish_to_website("e")
    pub.publish_to_all("e")
    pub.publish_to_room("custom", "e")
    assert [(m["event"], m["room"]) for m in sub.many(7)] == [
        ("e", "user:u@x"), ("e", "doc:ToDo/T-1"), ("e", "doctype:ToDo"),
        ("task_progress", "task_progress:T"), ("e", "website"), ("e", "all"), ("e", "custom")]


# --------------------------------------------------------------------------
# after_commit


def test_after_commit_outside_transaction_publishes_at_once(pub, sub):
    pub.publish_realtime("e", {"a": 1}, after_commit=True)
    assert sub.one() == env("e", {"a": 1}, "all")


def test_transaction_flushes_on_exit_in_order(pub, sub):
    with pub.transaction():
        pub.publish_realtime("doc_update", {"name": "1"}, doctype="ToDo", docname="1", after_commit=True)
        pub.publish_realtime("now", {}, after_commit=False)
        pub.publish_realtime("list_update", {"doctype": "ToDo"}, after_commit=True)
        assert sub.one()["event"] == "now"
        sub.nothing()
        assert pub.in_transaction and len(pub.pending) == 2
    assert sub.many(2) == [
        env("doc_update", {"name": "1"}, "doc:ToDo/1"),
        env("list_update", {"doctype": "ToDo"}, "doctype:ToDo"),
    ]
    assert not pub.in_transaction


def test_transaction_drops_on_exception(pub, sub):
    with pytest.raises(RuntimeError):
        with pub.transaction():
            pub.publish_realtime("e", {}, after_commit=True)
            raise RuntimeError("boom")
    assert not pub.in_transaction
    pub.publish_realtime("after", {}, after_commit=True)
    assert sub.one()["event"] == "after"


def test_duplicates_skipped(pub, sub):
    with pub.transaction():
        for _ in range(3):
            pub.publish_realtime("list_update", {"doctype": "ToDo", "name": "1"}, after_commit=True)
        pub.publish_realtime("list_update", {"doctype": "ToDo", "name": "2"}, after_commit=True)
        pub.publish_realtime("list_update", {"doctype": "ToDo", "name": "1"}, user="x",
                             after_commit=True)  # forced room: still a duplicate
        pub.publish_realtime("e", {"doctype": "ToDo", "name": "1"}, after_commit=True)
        pub.publish_realtime("e", {"doctype": "ToDo", "name": "1"}, site="other", after_commit=True)
        assert len(pub.pending) == 4
    assert [(m["event"], m["message"].get("name"), m["namespace"]) for m in sub.many(4)] == [
        ("list_update", "1", SITE), ("list_update", "2", SITE), ("e", "1", SITE), ("e", "1", "other")]
    sub.nothing()


def test_explicit_begin_commit_rollback(pub, sub):
    pub.begin()
    pub.publish_realtime("a", {}, after_commit=True)
    pub.rollback()
    pub.commit()  # nothing open: no-op
    pub.begin()
    pub.publish_realtime("b", {}, after_commit=True)
    pub.begin()  # already open: joins
    sub.nothing()
    pub.commit()
    assert sub.one()["event"] == "b"
    pub.publish_realtime("c", {}, after_commit=True)  # closed again: immediate
    assert sub.one()["event"] == "c"


def test_nested_transaction_joins_outer(pub, sub):
    with pub.transaction():
        with pub.transaction():
            pub.publish_realtime("inner", {}, after_commit=True)
        sub.nothing()
        try:
            with pub.transaction():
                pub.publish_realtime("inner2", {}, after_commit=True)
                raise ValueError
        except ValueError:
            pass
        pub.publish_realtime("outer", {}, after_commit=True)
    assert [m["event"] for m in sub.many(3)] == ["inner", "inner2", "outer"]


def test_commit_inside_transaction_block(pub, sub):
    with pub.transaction():
        pub.publish_realtime("a", {}, after_commit=True)
        pub.commit()
        assert sub.one()["event"] == "a"
        pub.publish_realtime("b", {}, after_commit=True)  # transaction closed: immediate
        assert sub.one()["event"] == "b"
    sub.nothing()


def test_transactions_are_per_thread(pub, sub):
    done = threading.Event()

    def other():
        pub.publish_realtime("other-thread", {}, after_commit=True)
        done.set()

    with pub.transaction():
        pub.publish_realtime("mine", {}, after_commit=True)
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert sub.one()["event"] == "other-thread"
    assert sub.one()["event"] == "mine"


def test_buffer_serializes_message_at_commit(pub, sub):
    msg = {"v": 1}
    with pub.transaction():
        pub.publish_realtime("e", msg, after_commit=True)
        msg["v"] = 2  # Frappe keeps a reference and serializes at flush time
    assert sub.one()["message"] == {"v": 2}


def test_module_level_transaction_api(server, sub):
    realtimed.configure(redis_url=server.url, site=SITE)
    with realtimed.transaction():
        realtimed.publish_realtime("x", {}, after_commit=True)
        sub.nothing(0.1)
    realtimed.begin()
    realtimed.publish_realtime("y", {}, after_commit=True)
    realtimed.rollback()
    realtimed.begin()
    realtimed.publish_realtime("z", {}, after_commit=True)
    realtimed.commit()
    assert [m["event"] for m in sub.many(2)] == ["x", "z"]


# --------------------------------------------------------------------------
# Configuration


def write_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(data if isinstance(data, str) else json.dumps(data))


def make_bench(root, config=None, common=None):
    os.makedirs(os.path.join(root, "sites"), exist_ok=True)
    os.makedirs(os.path.join(root, "apps"), exist_ok=True)
    if config is not None:
        write_json(os.path.join(root, "config.json"), config)
    if common is not None:
        write_json(os.path.join(root, "sites", "common_site_config.json"), common)
    return str(root)


def test_bench_truthy_merge(tmp_path, server, sub):
    bench = make_bench(tmp_path, config={"redis_queue": server.url, "default_site": "cfg.local"},
                       common={"redis_queue": "", "default_site": None, "socketio_port": 0})
    p = Publisher.from_bench(bench)
    assert (p.redis_url, p.site) == (server.url, "cfg.local")
    p.publish_realtime("e")
    assert sub.one()["namespace"] == "cfg.local"


def test_bench_common_config_wins(tmp_path, server):
    bench = make_bench(tmp_path, config={"redis_queue": "redis://127.0.0.1:1", "default_site": "a"},
                       common={"redis_queue": server.url, "default_site": "b"})
    p = Publisher.from_bench(bench)
    assert (p.redis_url, p.site) == (server.url, "b")


def test_bench_defaults_and_env_override(tmp_path, server, monkeypatch, sub):
    bench = make_bench(tmp_path)
    p = Publisher.from_bench(bench)
    assert (p.redis_url, p.site) == ("redis://127.0.0.1:11000", None)
    make_bench(tmp_path, common={"redis_queue": "redis://127.0.0.1:1", "default_site": "cfg"})
    monkeypatch.setenv("FRAPPE_REDIS_QUEUE", server.url)
    monkeypatch.setenv("FRAPPE_SITE", "env.local")
    p = Publisher.from_bench(bench)
    assert (p.redis_url, p.site) == (server.url, "env.local")
    p.publish_realtime("e")
    assert sub.one()["namespace"] == "env.local"
    monkeypatch.setenv("FRAPPE_SITE", "")  # empty variables do not override
    assert Publisher.from_bench(bench).site == "cfg"
    assert Publisher.from_bench(bench, site="arg", redis_url="redis://h:1").site == "arg"


def test_bench_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Publisher.from_bench(tmp_path / "nope")
    bench = make_bench(tmp_path / "b1", common="{not json")
    with pytest.raises(ConfigError, match="common_site_config.json"):
        Publisher.from_bench(bench)
    bench = make_bench(tmp_path / "b2", config="[1, 2]")
    with pytest.raises(ConfigError, match="not an object"):
        Publisher.from_bench(bench)


def test_unix_socket_url(tmp_path, server, sub):
    url = f"unix://{server.sock}?db=3"
    bench = make_bench(tmp_path, common={"redis_queue": url, "default_site": SITE})
    p = Publisher.from_bench(bench)
    kw = p.client.connection_pool.connection_kwargs
    assert (kw["path"], kw["db"]) == (server.sock, 3)
    p.publish_realtime("via-unix", {"a": 1})
    assert sub.one() == env("via-unix", {"a": 1}, "all")


def test_tcp_url_with_password_and_db():
    p = Publisher("redis://:s3cret@10.0.0.5:11000/2")
    kw = p.client.connection_pool.connection_kwargs
    assert (kw["host"], kw["port"], kw["db"], kw["password"]) == ("10.0.0.5", 11000, 2, "s3cret")
    assert kw["socket_connect_timeout"] == 1.0 and kw["socket_timeout"] == 1.0
    assert "s3cret" not in repr(p)
    assert redact_url("redis://:s3cret@h:1/2") == "redis://:***@h:1/2"
    assert Publisher("127.0.0.1:11000").redis_url == "redis://127.0.0.1:11000"
    with pytest.raises(ValueError):
        Publisher("http://127.0.0.1:11000")


def test_find_bench(tmp_path, monkeypatch):
    bench = make_bench(tmp_path / "bench", common={})
    other = tmp_path / "plain"
    other.mkdir()
    assert find_bench({}, cwd=str(other)) is None
    assert find_bench({}, cwd=bench) == bench
    assert find_bench({}, cwd=os.path.join(bench, "sites")) == bench
    assert find_bench({"FRAPPE_BENCH_ROOT": "/b2"}, cwd=bench) == "/b2"
    assert find_bench({"REALTIMED_BENCH": "/b1", "FRAPPE_BENCH_ROOT": "/b2"}) == "/b1"


def test_default_publisher_from_env_bench(tmp_path, server, monkeypatch, sub):
    bench = make_bench(tmp_path, common={"redis_queue": server.url, "default_site": "auto.local"})
    monkeypatch.setenv("REALTIMED_BENCH", bench)
    realtimed.configure()
    realtimed.publish_realtime("e", {"x": 1}, user="u")
    realtimed.publish_progress(5)
    assert sub.many(2) == [env("e", {"x": 1}, "user:u", "auto.local"),
                           env("progress", {"percent": 5, "title": None, "description": None},
                               "all", "auto.local")]
    assert realtimed.get_publisher().bench == bench


def test_default_publisher_from_cwd(tmp_path, server, monkeypatch, sub):
    bench = make_bench(tmp_path, common={"redis_queue": server.url, "default_site": "cwd.local"})
    monkeypatch.chdir(os.path.join(bench, "sites"))
    realtimed.configure()
    realtimed.publish_realtime("e")
    assert sub.one()["namespace"] == "cwd.local"


def test_default_publisher_bad_config_falls_back(tmp_path, server, monkeypatch, caplog, sub):
    bench = make_bench(tmp_path, common="{broken")
    monkeypatch.setenv("REALTIMED_BENCH", bench)
    monkeypatch.setenv("FRAPPE_REDIS_QUEUE", server.url)
    monkeypatch.setenv("FRAPPE_SITE", "env.local")
    realtimed.configure()
    with caplog.at_level(logging.ERROR, logger="realtimed"):
        realtimed.publish_realtime("e")
    assert "common_site_config.json" in caplog.text
    assert sub.one()["namespace"] == "env.local"


def test_configure_variants(tmp_path, server, sub):
    p = Publisher(server.url, site="given")
    assert realtimed.configure(p) is p and realtimed.get_publisher() is p
    realtimed.emit_via_redis("raw", 1, "r")
    bench = make_bench(tmp_path, common={"redis_queue": server.url, "default_site": "b.local"})
    realtimed.configure(bench=bench, session_user="s@x")
    realtimed.publish_realtime("msgprint", "hi")
    assert sub.many(2) == [env("raw", 1, "r", "given"), env("msgprint", "hi", "user:s@x", "b.local")]
    with pytest.raises(TypeError):
        realtimed.configure(p, site="x")


# --------------------------------------------------------------------------
# Redis down


def test_redis_down_never_raises(caplog):
    p = Publisher(f"redis://127.0.0.1:{free_port()}", site=SITE)
    with caplog.at_level(logging.DEBUG, logger="realtimed"):
        t0 = time.time()
        assert p.publish_realtime("e", {"a": 1}) is None
        p.publish_progress(10)
        assert p.emit_via_redis("e", {}, "r") is None
        with p.transaction():
            p.publish_realtime("e", {}, after_commit=True)
        p.begin()
        p.publish_realtime("f", {}, after_commit=True)
        p.commit()
        assert time.time() - t0 < 5
    assert not p.ping()
    records = [r for r in caplog.records if r.name == "realtimed"]
    assert records[0].levelno == logging.WARNING
    assert "cannot publish to Redis at redis://127.0.0.1:" in records[0].getMessage()
    assert all(r.levelno == logging.DEBUG for r in records[1:])  # one warning per outage
    with pytest.raises(realtimed.PublishError, match="cannot publish to Redis"):
        p.emit_via_redis("e", {}, "r", raise_errors=True)


def test_redis_unresponsive_times_out(caplog):
    # A listener that never answers: the socket timeout must bound the call.
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    try:
        p = Publisher(f"redis://127.0.0.1:{lsock.getsockname()[1]}", site=SITE,
                      connect_timeout=0.3, socket_timeout=0.3)
        with caplog.at_level(logging.WARNING, logger="realtimed"):
            t0 = time.time()
            p.publish_realtime("e")
            assert time.time() - t0 < 3
        assert "cannot publish to Redis" in caplog.text
    finally:
        lsock.close()


def test_recovery_logged(server, caplog, sub):
    p = Publisher(server.url, site=SITE)
    good = p._client
    p._client = redis.Redis(port=free_port(), socket_connect_timeout=0.5)
    with caplog.at_level(logging.INFO, logger="realtimed"):
        p.publish_realtime("lost")
        p._client = good
        p.publish_realtime("back")
    assert "reachable again" in caplog.text
    assert sub.one()["event"] == "back"


def test_auth_error_never_raises(caplog):
    # A server that answers every command with an error (e.g. NOAUTH).
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)

    def serve():
        try:
            conn, _ = lsock.accept()
            with conn:
                while conn.recv(4096):
                    conn.sendall(b"-NOAUTH Authentication required.\r\n")
        except OSError:
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        p = Publisher(f"redis://127.0.0.1:{lsock.getsockname()[1]}", site=SITE)
        with caplog.at_level(logging.WARNING, logger="realtimed"):
            p.publish_realtime("e")
        assert "Authentication required" in caplog.text
    finally:
        lsock.close()


# --------------------------------------------------------------------------
# CLI


def run_cli(*args, stdin=None, cwd=None, extra_env=None):
    e = {k: v for k, v in os.environ.items()
         if k not in ("REALTIMED_BENCH", "FRAPPE_BENCH_ROOT", "FRAPPE_REDIS_QUEUE", "FRAPPE_SITE")}
    e["PYTHONPATH"] = CLIENT_DIR
    e.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "realtimed", *args], input=stdin,
                          capture_output=True, text=True, env=e, cwd=cwd or ROOT, timeout=30)


def test_cli_publish_exact(server, sub):
    r = run_cli("publish", "--redis", server.url, "--site", SITE, "--user", "a@x",
                "notification", '{"k": [1, 2]}')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (f"published 'notification' to room 'user:a@x' on site "
                                f"'{SITE}' via {server.url} (1 subscriber(s))")
    assert sub.raw() == ['{\n "event": "notification",\n "message": {\n  "k": [\n   1,\n   2\n'
                         '  ]\n },\n "namespace": "site1.local",\n "room": "user:a@x"\n}']


def test_cli_targets(server, sub):
    base = ("publish", "-q", "--redis", server.url, "--site", SITE)
    for extra in (["ev"], ["--room", "r", "ev"], ["--doctype", "ToDo", "--docname", "T 1", "ev"],
                  ["--doctype", "ToDo", "list_update"], ["--task", "T", "ev", '{"a": 1}'],
                  ["--session-user", "s@x", "msgprint", '"hi"']):
        r = run_cli(*base, *extra)
        assert r.returncode == 0 and r.stdout == "", r.stderr
    assert sub.many(6) == [
        env("ev", {}, "all"), env("ev", {}, "r"), env("ev", {}, "doc:ToDo/T 1"),
        env("list_update", {}, "doctype:ToDo"), env("ev", {"a": 1, "task_id": "T"}, "task_progress:T"),
        env("msgprint", "hi", "user:s@x")]


def test_cli_stdin_and_bench(tmp_path, server, sub):
    bench = make_bench(tmp_path, common={"redis_queue": server.url, "default_site": "bench.local"})
    r = run_cli("publish", "--bench", bench, "ev", "-", stdin='{"from": "stdin"}')
    assert r.returncode == 0, r.stderr
    r = run_cli("publish", "ev2", cwd=bench)  # bench found from the working directory
    assert r.returncode == 0, r.stderr
    r = run_cli("publish", "ev3", extra_env={"FRAPPE_REDIS_QUEUE": server.url, "FRAPPE_SITE": "e.local"})
    assert r.returncode == 0, r.stderr
    assert sub.many(3) == [env("ev", {"from": "stdin"}, "all", "bench.local"),
                           env("ev2", {}, "all", "bench.local"), env("ev3", {}, "all", "e.local")]


def test_cli_progress(server, sub):
    base = ("publish-progress", "-q", "--redis", server.url, "--site", SITE)
    assert run_cli(*base, "50", "--title", "Import", "--description", "half").returncode == 0
    assert run_cli(*base, "12.5", "--doctype", "ToDo", "--docname", "T-1").returncode == 0
    assert run_cli(*base, "7", "--session-user", "s@x").returncode == 0
    assert run_cli(*base, "9", "--task", "T").returncode == 0
    assert sub.many(4) == [
        env("progress", {"percent": 50, "title": "Import", "description": "half"}, "all"),
        env("progress", {"percent": 12.5, "title": None, "description": None}, "doc:ToDo/T-1"),
        env("progress", {"percent": 7, "title": None, "description": None}, "user:s@x"),
        env("progress", {"percent": 9, "title": None, "description": None, "task_id": "T"},
            "task_progress:T"),
    ]


@pytest.mark.parametrize("args,code,text", [
    (["publish", "--site", "s", "ev", "{bad"], 2, "realtimed: invalid JSON message: "),
    (["publish", "--site", "s", "--docname", "N", "ev"], 2, "realtimed: --docname needs --doctype"),
    (["publish", "--redis", "redis://127.0.0.1:1", "ev"], 2, "realtimed: no site: "),
    (["publish", "--redis", "http://x", "--site", "s", "ev"], 2, "realtimed: Redis URL must specify"),
    (["publish", "--bench", "/nonexistent-bench", "--site", "s", "ev"], 2,
     "realtimed: bench directory '/nonexistent-bench' does not exist"),
    (["publish-progress", "--site", "s", "half"], 2, "realtimed: invalid PERCENT 'half'"),
    (["publish", "--redis", "redis://127.0.0.1:1", "--site", "s", "ev"], 1,
     "realtimed: cannot publish to Redis at redis://127.0.0.1:1: "),
    (["publish-progress", "--redis", "redis://127.0.0.1:1", "--site", "s", "5"], 1,
     "realtimed: cannot publish to Redis at redis://127.0.0.1:1: "),
])
def test_cli_errors(args, code, text, tmp_path):
    r = run_cli(*args, cwd=str(tmp_path))
    assert r.returncode == code
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(text), r.stderr


def test_cli_usage_errors(tmp_path):
    r = run_cli("publish", "--room", "r", "--user", "u", "--site", "s", "ev", cwd=str(tmp_path))
    assert r.returncode == 2 and "not allowed with argument" in r.stderr
    r = run_cli(cwd=str(tmp_path))
    assert r.returncode == 2
    r = run_cli("publish", "--help")
    assert r.returncode == 0 and "--doctype" in r.stdout
