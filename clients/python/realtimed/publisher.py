"""Publishing realtime events through Redis, with Frappe's routing rules.

A publish becomes one PUBLISH on channel `events` of the queue Redis
(`redis_queue`), carrying frappe.as_json({"event", "message", "room",
"namespace": <site>}). The realtime server emits `event` with `message` to
`room` in the namespace `/<site>`.
"""

import contextlib
import contextvars
import logging
import os
from collections.abc import Mapping, MutableMapping

import redis

from . import config as _config
from .jsonenc import as_json
from .rooms import (
    get_doc_room,
    get_doctype_room,
    get_site_room,
    get_task_progress_room,
    get_user_room,
    get_website_room,
)

__all__ = ["CHANNEL", "Publisher", "Realtime", "PublishError", "resolve", "build_payload"]

CHANNEL = "events"

logger = logging.getLogger("realtimed")

_UNSET = object()


class PublishError(Exception):
    """Raised only by emit_via_redis(..., raise_errors=True): Redis refused or is down."""


def resolve(event=None, message=None, room=None, user=None, doctype=None, docname=None,
            task_id=None, after_commit=False, *, session_user=None, local_task_id=None):
    """Apply frappe.publish_realtime's defaults and routing; no I/O.

    Returns (event, message, room, after_commit). Like Frappe, a dict message
    is updated in place with "task_id" when the event goes to a task room.
    `session_user` stands for frappe.session.user and `local_task_id` for
    frappe.local.task_id (the task of the running background job).
    """
    if message is None:
        message = {}

    if not task_id and local_task_id:
        task_id = local_task_id

    if event is None:
        event = "task_progress" if task_id else "global"
    elif event == "msgprint" and not user:
        user = session_user
    elif event == "list_update":
        if not doctype and isinstance(message, Mapping):
            doctype = message.get("doctype")
        room = get_doctype_room(doctype)
    elif event == "docinfo_update":
        room = get_doc_room(doctype, docname)

    if not room:
        if task_id:
            after_commit = False
            if isinstance(message, MutableMapping) and "task_id" not in message:
                message["task_id"] = task_id
            room = get_task_progress_room(task_id)
        elif user:
            room = get_user_room(user)
        elif doctype and docname:
            room = get_doc_room(doctype, docname)
        else:
            room = get_site_room()

    return event, message, room, after_commit


def build_payload(event, message, room, site):
    """The exact text published on `events` (frappe.as_json of the envelope)."""
    return as_json({"event": event, "message": message, "room": room, "namespace": site})


class _Transaction:
    __slots__ = ("log",)

    def __init__(self):
        self.log = []  # [event, message, room, site]


class Publisher:
    """Publishes realtime events for one Redis queue instance.

    Construct it explicitly (Publisher("redis://127.0.0.1:11000", site="site1.local"))
    or from a bench with Publisher.from_bench(path). It never raises because
    Redis is unreachable: the failure is logged on the `realtimed` logger.
    """

    def __init__(self, redis_url=None, site=None, session_user=None, task_id=None, *,
                 connect_timeout=1.0, socket_timeout=1.0, client=None):
        self.redis_url = _config.normalize_redis_url(redis_url or _config.DEFAULT_REDIS_URL)
        self.site = site
        self._session_user = session_user
        self._task_id = task_id
        self.connect_timeout = connect_timeout
        self.socket_timeout = socket_timeout
        self._client = client if client is not None else self._make_client()
        self._txn = contextvars.ContextVar(f"realtimed_txn_{id(self)}", default=None)
        self._ctx = contextvars.ContextVar(f"realtimed_ctx_{id(self)}", default=None)
        self._failing = False
        self._warned_no_site = False

    # -- construction -------------------------------------------------------

    def _make_client(self):
        kwargs = {"socket_timeout": self.socket_timeout}
        # redis-py passes URL options straight to the connection class, and
        # its Unix socket connection has no connect timeout parameter.
        if not self.redis_url.startswith("unix:"):
            kwargs["socket_connect_timeout"] = self.connect_timeout
        return redis.Redis.from_url(self.redis_url, **kwargs)

    @classmethod
    def from_bench(cls, bench, *, redis_url=None, site=None, environ=None, **kwargs):
        """Configure from a bench directory like Frappe's realtime server.

        redis_queue (default redis://127.0.0.1:11000) and default_site come from
        config.json then sites/common_site_config.json (truthy values only),
        overridden by FRAPPE_REDIS_QUEUE / FRAPPE_SITE; explicit arguments win.
        Raises ConfigError for a missing bench or a malformed config file.
        """
        conf = _config.load_bench_config(bench, environ)
        pub = cls(redis_url or conf.get("redis_queue"), site or conf.get("default_site"), **kwargs)
        pub.bench = os.fspath(bench)
        return pub

    @classmethod
    def from_env(cls, *, redis_url=None, site=None, environ=None, **kwargs):
        """Configure from FRAPPE_REDIS_QUEUE / FRAPPE_SITE only (no bench)."""
        conf = _config.apply_env_overrides({}, environ)
        return cls(redis_url or conf.get("redis_queue"), site or conf.get("default_site"), **kwargs)

    @classmethod
    def auto(cls, *, environ=None, cwd=None, **kwargs):
        """From the bench found by config.find_bench(), else from the environment."""
        bench = _config.find_bench(environ, cwd)
        if bench:
            return cls.from_bench(bench, environ=environ, **kwargs)
        return cls.from_env(environ=environ, **kwargs)

    bench = None

    def __repr__(self):
        return (f"<Publisher {_config.redact_url(self.redis_url)} site={self.site!r} "
                f"session_user={self.session_user!r}>")

    @property
    def client(self):
        """The redis-py client used for PUBLISH."""
        return self._client

    def close(self):
        self._client.connection_pool.disconnect()

    # -- per-context session (frappe.session.user / frappe.local.task_id) ---

    @property
    def session_user(self):
        ctx = self._ctx.get()
        if ctx is not None and ctx[0] is not _UNSET:
            return ctx[0]
        return self._session_user

    @session_user.setter
    def session_user(self, value):
        self._session_user = value

    @property
    def task_id(self):
        ctx = self._ctx.get()
        if ctx is not None and ctx[1] is not _UNSET:
            return ctx[1]
        return self._task_id

    @task_id.setter
    def task_id(self, value):
        self._task_id = value

    @contextlib.contextmanager
    def session(self, user=_UNSET, task_id=_UNSET):
        """Override session_user and/or task_id for the current thread/async context."""
        outer = self._ctx.get() or (_UNSET, _UNSET)
        token = self._ctx.set((outer[0] if user is _UNSET else user,
                               outer[1] if task_id is _UNSET else task_id))
        try:
            yield self
        finally:
            self._ctx.reset(token)

    # -- publishing ----------------------------------------------------------

    def publish_realtime(self, event=None, message=None, room=None, user=None, doctype=None,
                         docname=None, task_id=None, after_commit=False, site=None):
        """frappe.publish_realtime: route the event and publish it.

        With after_commit=True inside a transaction (see transaction()/begin())
        the event is buffered until commit; outside any transaction it is
        published at once. A message the JSON encoder cannot serialize raises
        TypeError; Redis problems are only logged.
        """
        event, message, room, after_commit = resolve(
            event, message, room, user, doctype, docname, task_id, after_commit,
            session_user=self.session_user, local_task_id=self.task_id)
        site = self.site if site is None else site

        txn = self._txn.get() if after_commit else None
        if txn is None:
            self.emit_via_redis(event, message, room, site)
            return
        build_payload(event, message, room, site)  # fail at the call site, not at commit
        entry = [event, message, room, site]
        if entry not in txn.log:
            txn.log.append(entry)

    def publish_progress(self, percent, title=None, doctype=None, docname=None,
                         description=None, task_id=None, site=None):
        """frappe.publish_progress: `progress` to the doc room, else the session user."""
        self.publish_realtime(
            "progress",
            {"percent": percent, "title": title, "description": description},
            user=None if doctype and docname else self.session_user,
            doctype=doctype,
            docname=docname,
            task_id=task_id,
            site=site,
        )

    # Sugar from Frappe develop; same wire format as publish_realtime.
    def publish_to_user(self, user, event, message=None, *, after_commit=False, site=None):
        self.publish_realtime(event, message, user=user, after_commit=after_commit, site=site)

    def publish_to_doc(self, doctype, docname, event, message=None, *, after_commit=False, site=None):
        self.publish_realtime(event, message, doctype=doctype, docname=docname,
                              after_commit=after_commit, site=site)

    def publish_to_doctype(self, doctype, event, message=None, *, after_commit=False, site=None):
        self.publish_realtime(event, message, room=get_doctype_room(doctype),
                              after_commit=after_commit, site=site)

    def publish_task_progress(self, task_id, message=None, *, after_commit=False, site=None):
        self.publish_realtime(message=message, task_id=task_id, after_commit=after_commit, site=site)

    def publish_to_website(self, event, message=None, *, after_commit=False, site=None):
        self.publish_realtime(event, message, room=get_website_room(),
                              after_commit=after_commit, site=site)

    def publish_to_all(self, event, message=None, *, after_commit=False, site=None):
        self.publish_realtime(event, message, room=get_site_room(),
                              after_commit=after_commit, site=site)

    def publish_to_room(self, room, event, message=None, *, after_commit=False, site=None):
        self.publish_realtime(event, message, room=room, after_commit=after_commit, site=site)

    def emit_via_redis(self, event, message, room, site=None, *, raise_errors=False):
        """PUBLISH one event as-is (no routing). Returns the receiver count.

        On a Redis failure it logs and returns None, or raises PublishError
        when raise_errors is set. site=None means this publisher's site.
        """
        site = self.site if site is None else site
        payload = build_payload(event, message, room, site)
        self._check_site(site)
        try:
            receivers = self._client.publish(CHANNEL, payload)
        except (redis.RedisError, OSError) as e:
            if raise_errors:
                raise PublishError(self._describe(e)) from e
            self._failed(e, 1)
            return None
        self._recovered()
        return receivers

    def ping(self):
        """True when Redis answers PING; never raises."""
        try:
            return bool(self._client.ping())
        except (redis.RedisError, OSError):
            return False

    # -- after-commit buffer -------------------------------------------------

    @property
    def in_transaction(self):
        return self._txn.get() is not None

    @property
    def pending(self):
        """Buffered [event, message, room, site] entries of the open transaction."""
        txn = self._txn.get()
        return [list(e) for e in txn.log] if txn else []

    def begin(self):
        """Open a transaction in this thread/async context (no-op if one is open)."""
        if self._txn.get() is None:
            self._txn.set(_Transaction())

    def commit(self):
        """Publish the buffered events (in order) and close the transaction."""
        txn = self._txn.get()
        self._txn.set(None)
        if txn is not None and txn.log:
            self._flush(txn.log)

    def rollback(self):
        """Drop the buffered events and close the transaction."""
        self._txn.set(None)

    @contextlib.contextmanager
    def transaction(self):
        """Buffer after_commit events; publish them on normal exit, drop them on an exception.

        A nested block joins the transaction already open: only the outermost
        block commits or rolls back.
        """
        if self._txn.get() is not None:
            yield self
            return
        txn = _Transaction()
        self._txn.set(txn)
        try:
            yield self
        except BaseException:
            if self._txn.get() is txn:
                self._txn.set(None)
            raise
        if self._txn.get() is txn:
            self.commit()

    def _flush(self, log):
        payloads = []
        for event, message, room, site in log:
            try:
                payloads.append(build_payload(event, message, room, site))
            except (TypeError, ValueError):
                logger.exception("dropping unserializable %r event for room %r",
                                 event, room)
                continue
            self._check_site(site)
        if not payloads:
            return
        try:
            pipe = self._client.pipeline(transaction=False)
            for payload in payloads:
                pipe.publish(CHANNEL, payload)
            pipe.execute()
        except (redis.RedisError, OSError) as e:
            self._failed(e, len(payloads))
            return
        self._recovered()

    # -- logging ---------------------------------------------------------------

    def _describe(self, exc):
        return f"cannot publish to Redis at {_config.redact_url(self.redis_url)}: {exc}"

    def _failed(self, exc, count):
        # Warn once per outage, then stay quiet until Redis answers again.
        level = logging.DEBUG if self._failing else logging.WARNING
        self._failing = True
        logger.log(level, "%s (%d event(s) dropped)", self._describe(exc), count)

    def _recovered(self):
        if self._failing:
            self._failing = False
            logger.info("Redis at %s is reachable again",
                        _config.redact_url(self.redis_url))

    def _check_site(self, site):
        if site is None and not self._warned_no_site:
            self._warned_no_site = True
            logger.warning("publishing with no site (namespace null); "
                           "the realtime server will deliver it to no client")


Realtime = Publisher
