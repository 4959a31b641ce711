"""Self-test of tests/lib/procs.py and the fake Frappe server (smaller than the node one)."""
import json
import os

import requests

from procs import Realtimed, free_port, make_bench, wait_for

M = "/api/method/frappe.realtime."
USERS = {"alice@x": {"sids": ["sid-alice"], "tokens": ["token k1:s1"], "apps": ["frappe"],
                     "docs": [["ToDo", "T/1 x"]]}}


def test_user_info_and_token_precedence(fake_frappe):
    fake_frappe.config({"users": USERS})
    url = fake_frappe.url + M + "get_user_info"
    r = requests.get(url, headers={"Authorization": "token k1:s1", "Cookie": "sid=Guest"})
    assert r.json() == {"message": {"user": "alice@x", "user_type": "System User", "installed_apps": ["frappe"]}}
    assert requests.get(url, cookies={"sid": "Guest"}).json()["message"]["user"] == "Guest"
    r = requests.get(url, cookies={"sid": "nope"})
    assert (r.status_code, r.json()) == (401, {"exc_type": "AuthenticationError"})


def test_permission_and_recording(fake_frappe):
    fake_frappe.config({"users": USERS})
    url = fake_frappe.url + M + "has_permission"
    ok = requests.get(url, params={"doctype": "ToDo", "name": "T/1 x"}, cookies={"sid": "sid-alice"})
    assert ok.json() == {"message": True}
    denied = requests.get(url, params={"doctype": "ToDo", "name": ""}, cookies={"sid": "sid-alice"})
    assert (denied.status_code, denied.json()) == (403, {"exc_type": "PermissionError"})
    rows = fake_frappe.requests("has_permission")
    assert [r["query"] for r in rows] == [{"doctype": "ToDo", "name": "T/1 x"}, {"doctype": "ToDo", "name": ""}]
    assert rows[0]["headers"]["cookie"] == "sid=sid-alice"


def test_html500_and_redis_secret(fake_frappe, redis_server):
    fake_frappe.config({"users": USERS, "fail": {"get_user_info": {"mode": "html500", "times": 1}},
                        "secret_redis": {"port": redis_server.port}})
    url = fake_frappe.url + M + "get_user_info"
    r = requests.get(url, cookies={"sid": "sid-alice"})
    assert r.status_code == 500 and r.text.startswith("<!DOCTYPE html>")
    redis_server.command("SET", "socketio_auth_secret", "abc")
    assert requests.get(url, cookies={"sid": "sid-alice"}).json() == {"message": {}}
    r = requests.get(url, cookies={"sid": "sid-alice"}, headers={"X-Frappe-Socket-Secret": "abc"})
    assert r.json()["message"]["user"] == "alice@x"


def test_realtimed_wrapper_and_bench(monkeypatch):
    port = free_port()
    monkeypatch.setenv("REALTIMED_BIN", "/usr/bin/python3")
    script = ("import socket,sys,time; s=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[2]))); "
              "s.listen(); print('listening', flush=True); time.sleep(60)")
    with Realtimed(["-c", script, "--port", port]) as rt:
        assert rt.wait_for_line(r"listening", 2)
        assert rt.running
    assert rt.stop() == -15
    bench = make_bench(common_site_config={"socketio_port": port}, sites={"a.local": {"x": 1}})
    assert json.load(open(os.path.join(bench, "sites/a.local/site_config.json"))) == {"x": 1}
    assert wait_for(lambda: os.path.isdir(bench)) is True
