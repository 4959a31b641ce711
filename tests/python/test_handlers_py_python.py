"""Apps' realtime/handlers.py through python-socketio clients (issue 16):
the fixture app tests/fixtures/apps/pyfull in a bench with a real venv and
the stand-in frappe with the registry, over polling and websocket.

Run: PYTHONPATH=clients/python /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/python/test_handlers_py_python.py
"""

import queue
import site
import subprocess
import sys
from pathlib import Path

import pytest
import socketio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lib"))

from procs import FakeFrappe, Realtimed, RedisServer, free_port, make_bench  # noqa: E402

SITE = "site1.local"
NS = "/" + SITE
FIX = ROOT / "tests" / "fixtures"
INSTALLED = ["frappe", "pyfull"]
USERS = {"alice@x": {"user_type": "System User", "sids": ["sid-alice"], "apps": INSTALLED, "doctypes": ["ToDo"]},
         "Guest": {"user_type": "Website User", "apps": INSTALLED}}


def make_venv(bench):
    env = Path(bench) / "env"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", "--without-pip", str(env)], check=True)
    sp = subprocess.run([str(env / "bin" / "python"), "-c", "import site; print(site.getsitepackages()[0])"],
                        check=True, capture_output=True, text=True).stdout.strip()
    apps = sorted((Path(bench) / "apps").iterdir())
    Path(sp, "bench_apps.pth").write_text("".join(f"{a}\n" for a in apps))


@pytest.fixture(scope="module")
def stack():
    with RedisServer() as redis, FakeFrappe(config={"users": USERS}) as fake:
        port = free_port()
        bench = make_bench(
            common_site_config={"redis_queue": redis.url, "webserver_port": fake.port, "socketio_port": port},
            sites=[SITE], apps={"frappe": str(FIX / "pyfrappe" / "registry"), "pyfull": str(FIX / "apps" / "pyfull")})
        make_venv(bench)
        rt = Realtimed(["--webserver-host", "127.0.0.1"], cwd=bench, port=port)
        try:
            rt.wait_for_line(r"python host ready", timeout=15)
            yield {"url": rt.url, "port": port}
        finally:
            rc = rt.stop()
            assert rc == 0, f"realtimed exited {rc}; output:\n{rt.output()}"


@pytest.mark.parametrize("transports", [["polling"], ["websocket"]])
def test_python_handlers(stack, transports):
    sio = socketio.Client(reconnection=False)
    got = {}
    for e in ("py_welcome", "py_state", "ice", "py_typers"):
        got[e] = queue.Queue()
        sio.on(e, (lambda q: lambda *a: q.put(list(a)))(got[e]), namespace=NS)
    sio.connect(stack["url"], headers={"Cookie": "sid=sid-alice", "Origin": f"http://127.0.0.1:{stack['port']}",
                                       "X-Frappe-Site-Name": SITE},
                transports=transports, namespaces=[NS], wait_timeout=5)
    try:
        assert got["py_welcome"].get(timeout=5) == [{"user": "alice@x", "site": SITE, "apps": INSTALLED}]
        sio.emit("py_state", 5, namespace=NS)
        st = got["py_state"].get(timeout=5)[0]
        assert st["value"] == 5 and st["connected_as"] == "alice@x"
        sio.emit("fire", namespace=NS)
        assert got["ice"].get(timeout=5) == []
        sio.emit("py_typing", "P1", namespace=NS)
        assert got["py_typers"].get(timeout=5) == [{"channel": "P1", "users": ["alice@x"]}]
        # an ack is answered (empty) once the handlers ran
        assert sio.call("py_state", namespace=NS, timeout=5) is None
    finally:
        sio.disconnect()
