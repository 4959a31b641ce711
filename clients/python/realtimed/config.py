"""Bench configuration, read the way Frappe's realtime server reads it.

`<bench>/config.json` is merged first, then `<bench>/sites/common_site_config.json`;
only truthy values are copied, so a 0/false/"" never overrides an earlier value.
Per-site site_config.json is not read. Then non-empty environment variables
override: FRAPPE_REDIS_QUEUE -> redis_queue, FRAPPE_SITE -> default_site.
"""

import json
import os
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "DEFAULT_REDIS_URL",
    "ConfigError",
    "load_bench_config",
    "apply_env_overrides",
    "looks_like_bench",
    "find_bench",
    "normalize_redis_url",
    "redact_url",
]

DEFAULT_REDIS_URL = "redis://127.0.0.1:11000"

# Environment variable -> config key, as the Node server applies them.
ENV_OVERRIDES = (
    ("FRAPPE_REDIS_QUEUE", "redis_queue"),
    ("FRAPPE_SITE", "default_site"),
)


class ConfigError(ValueError):
    """A bench directory or one of its config files cannot be used."""


def _merge_file(conf, path):
    if not os.path.exists(path):
        return
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"cannot read {path}: top-level JSON value is not an object")
    for key, value in data.items():
        if value:
            conf[key] = value


def apply_env_overrides(conf, environ=None):
    """Apply the FRAPPE_* overrides in place; empty variables are ignored."""
    environ = os.environ if environ is None else environ
    for var, key in ENV_OVERRIDES:
        if environ.get(var):
            conf[key] = environ[var]
    return conf


def load_bench_config(bench, environ=None):
    """Merged configuration of a bench directory, env overrides applied.

    Missing files are skipped (as Node does); a malformed one raises ConfigError.
    """
    bench = os.fspath(bench)
    if not os.path.isdir(bench):
        raise ConfigError(f"bench directory {bench!r} does not exist")
    conf = {}
    _merge_file(conf, os.path.join(bench, "config.json"))
    _merge_file(conf, os.path.join(bench, "sites", "common_site_config.json"))
    return apply_env_overrides(conf, environ)


def looks_like_bench(path):
    path = os.fspath(path)
    return os.path.isfile(os.path.join(path, "sites", "common_site_config.json")) or (
        os.path.isdir(os.path.join(path, "sites")) and os.path.isdir(os.path.join(path, "apps"))
    )


def find_bench(environ=None, cwd=None):
    """The bench to configure the default publisher from, or None.

    REALTIMED_BENCH, then FRAPPE_BENCH_ROOT, then the current directory when it
    is a bench or a bench's sites/ directory (Frappe processes run in sites/).
    """
    environ = os.environ if environ is None else environ
    for var in ("REALTIMED_BENCH", "FRAPPE_BENCH_ROOT"):
        if environ.get(var):
            return environ[var]
    cwd = os.getcwd() if cwd is None else cwd
    if looks_like_bench(cwd):
        return cwd
    parent = os.path.dirname(os.path.abspath(cwd))
    if os.path.basename(os.path.abspath(cwd)) == "sites" and looks_like_bench(parent):
        return parent
    return None


def normalize_redis_url(url):
    """Accept a bare host:port (as some configs hold) by assuming redis://."""
    url = str(url).strip()
    if "://" not in url:
        url = "redis://" + url
    return url


def redact_url(url):
    """The URL with any password replaced by ***, for logs and messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return url
