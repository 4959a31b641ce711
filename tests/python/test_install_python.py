"""The Python package installs offline from the repository into a fresh
virtual environment (pip, no index, the system's setuptools), and its
standalone helpers work from there: a token it mints admits a
python-socketio client, and its API client publishes to it."""
import queue
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from procs import Realtimed, free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CLEAN_ENV = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}  # the venv's own, only


def test_pip_install_into_a_fresh_venv_and_use_it():
    d = Path(tempfile.mkdtemp(prefix="realtimed-pyinstall-"))
    src = d / "src"
    shutil.copytree(ROOT / "clients" / "python", src)  # pip writes build files beside the sources
    env = d / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(env)], check=True)
    subprocess.run([str(env / "bin" / "pip"), "install", "--no-index", "--no-build-isolation", "-q", str(src)],
                   check=True, cwd=d, env=CLEAN_ENV)
    shutil.rmtree(src)  # nothing left to import from but the venv
    (d / "key").write_bytes(b"venv-secret\n")
    (d / "api.keys").write_text("k1\n")
    port = free_port()
    rt = Realtimed(["--auth-mode", "jwt", "--jwt-key", d / "key", "--api-key-file", d / "api.keys", "--port", port,
                    "--log-level", "warning"], cwd=d)
    try:
        script = (
            "import realtimed, realtimed.api as a, sys\n"
            "assert realtimed.__file__.startswith(sys.prefix), realtimed.__file__\n"
            "print(a.mint_token(b'venv-secret', 'vic'))\n"
        )
        token = subprocess.run([str(env / "bin" / "python"), "-c", script], check=True, cwd=d, env=CLEAN_ENV,
                               capture_output=True, text=True).stdout.strip()
        import socketio
        got = queue.Queue()
        c = socketio.Client(reconnection=False)
        c.on("hi", lambda *x: got.put(x))
        c.connect(rt.url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
        publish = (
            "import realtimed.api as a, sys\n"
            f"a.ApiClient('{rt.url}', 'k1').publish('hi', 'from the venv', room='user:vic')\n"
        )
        subprocess.run([str(env / "bin" / "python"), "-c", publish], check=True, cwd=d, env=CLEAN_ENV)
        assert got.get(timeout=10) == ("from the venv",)
        c.disconnect()
    finally:
        rt.stop()
        shutil.rmtree(d, ignore_errors=True)
