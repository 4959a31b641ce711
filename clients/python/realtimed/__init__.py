"""realtimed: publish Frappe-compatible realtime events from Python.

    import realtimed
    realtimed.configure(redis_url="redis://127.0.0.1:11000", site="site1.local")
    realtimed.publish_realtime("list_update", {"doctype": "ToDo", "name": "T-1"})

The module-level functions use a default Publisher: the one given to
configure(), else one configured on first use from REALTIMED_BENCH,
FRAPPE_BENCH_ROOT, the current directory if it is a bench (or its sites/),
or else the environment (FRAPPE_REDIS_QUEUE, FRAPPE_SITE).
"""

import logging
import threading

from .config import DEFAULT_REDIS_URL, ConfigError, load_bench_config
from .jsonenc import as_json
from .publisher import CHANNEL, PublishError, Publisher, Realtime, build_payload, resolve
from .rooms import (
    get_doc_room,
    get_doctype_room,
    get_site_room,
    get_task_progress_room,
    get_user_room,
    get_website_room,
)

__version__ = "0.1.0"

__all__ = [
    "CHANNEL", "DEFAULT_REDIS_URL", "ConfigError", "PublishError", "Publisher", "Realtime",
    "as_json", "build_payload", "resolve", "load_bench_config",
    "configure", "get_publisher",
    "publish_realtime", "publish_progress", "emit_via_redis",
    "publish_to_user", "publish_to_doc", "publish_to_doctype", "publish_task_progress",
    "publish_to_website", "publish_to_all", "publish_to_room",
    "begin", "commit", "rollback", "transaction",
    "get_doctype_room", "get_doc_room", "get_user_room", "get_site_room",
    "get_task_progress_room", "get_website_room",
]

_default = None
_default_lock = threading.Lock()


def configure(publisher=None, *, bench=None, **kwargs):
    """Set the default publisher and return it.

    configure(pub)                       use this Publisher
    configure(bench="/home/frappe/bench") Publisher.from_bench(bench, **kwargs)
    configure(redis_url=..., site=..., session_user=...)  Publisher(**kwargs)
    configure()                          forget it; rediscover on next use
    """
    global _default
    if publisher is not None:
        if bench is not None or kwargs:
            raise TypeError("configure() takes a Publisher or settings, not both")
        new = publisher
    elif bench is not None:
        new = Publisher.from_bench(bench, **kwargs)
    elif kwargs:
        new = Publisher(**kwargs)
    else:
        new = None
    with _default_lock:
        _default = new
    return new


def get_publisher():
    """The default Publisher, configuring it on first use.

    A malformed bench config is logged and the environment is used instead,
    so module-level publishing never raises for configuration either.
    """
    global _default
    with _default_lock:
        if _default is None:
            try:
                _default = Publisher.auto()
            except (ConfigError, ValueError) as e:
                logging.getLogger("realtimed").error(
                    "%s; using the environment defaults", e)
                try:
                    _default = Publisher.from_env()
                except ValueError as e2:
                    logging.getLogger("realtimed").error(
                        "%s; using %s", e2, DEFAULT_REDIS_URL)
                    _default = Publisher()
        return _default


def publish_realtime(event=None, message=None, room=None, user=None, doctype=None,
                     docname=None, task_id=None, after_commit=False, site=None):
    """frappe.publish_realtime on the default publisher (see Publisher.publish_realtime)."""
    get_publisher().publish_realtime(event, message, room, user, doctype, docname,
                                     task_id, after_commit, site)


def publish_progress(percent, title=None, doctype=None, docname=None, description=None,
                     task_id=None, site=None):
    """frappe.publish_progress on the default publisher."""
    get_publisher().publish_progress(percent, title, doctype, docname, description, task_id, site)


def emit_via_redis(event, message, room, site=None):
    """PUBLISH one already-routed event on the default publisher."""
    return get_publisher().emit_via_redis(event, message, room, site)


def publish_to_user(user, event, message=None, *, after_commit=False, site=None):
    get_publisher().publish_to_user(user, event, message, after_commit=after_commit, site=site)


def publish_to_doc(doctype, docname, event, message=None, *, after_commit=False, site=None):
    get_publisher().publish_to_doc(doctype, docname, event, message,
                                   after_commit=after_commit, site=site)


def publish_to_doctype(doctype, event, message=None, *, after_commit=False, site=None):
    get_publisher().publish_to_doctype(doctype, event, message, after_commit=after_commit, site=site)


def publish_task_progress(task_id, message=None, *, after_commit=False, site=None):
    get_publisher().publish_task_progress(task_id, message, after_commit=after_commit, site=site)


def publish_to_website(event, message=None, *, after_commit=False, site=None):
    get_publisher().publish_to_website(event, message, after_commit=after_commit, site=site)


def publish_to_all(event, message=None, *, after_commit=False, site=None):
    get_publisher().publish_to_all(event, message, after_commit=after_commit, site=site)


def publish_to_room(room, event, message=None, *, after_commit=False, site=None):
    get_publisher().publish_to_room(room, event, message, after_commit=after_commit, site=site)


def begin():
    get_publisher().begin()


def commit():
    get_publisher().commit()


def rollback():
    get_publisher().rollback()


def transaction():
    return get_publisher().transaction()
