"""Command line: python3 -m realtimed publish|publish-progress ...

Exit status: 0 published, 1 Redis unreachable or refused, 2 usage error
(bad arguments, invalid JSON, unusable configuration, no site).
"""

import argparse
import json
import sys

from .config import ConfigError, redact_url
from .publisher import PublishError, Publisher, resolve

EXIT_OK, EXIT_REDIS, EXIT_USAGE = 0, 1, 2


class _Fail(Exception):
    def __init__(self, code, text):
        super().__init__(text)
        self.code = code


def _common(p):
    p.add_argument("--bench", metavar="DIR",
                   help="bench directory (default: $REALTIMED_BENCH, $FRAPPE_BENCH_ROOT or the "
                        "current directory when it is a bench)")
    p.add_argument("--redis", metavar="URL",
                   help="redis_queue URL: redis://[:password@]host:port[/db] or unix:///path?db=N")
    p.add_argument("--site", metavar="SITE", help="site (namespace); default: default_site")
    p.add_argument("--session-user", metavar="USER",
                   help="user standing for frappe.session.user (msgprint, progress)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


def build_parser():
    parser = argparse.ArgumentParser(prog="python3 -m realtimed",
                                     description="Publish Frappe realtime events through Redis.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    pub = sub.add_parser("publish", help="publish an event (publish_realtime)")
    _common(pub)
    target = pub.add_mutually_exclusive_group()
    target.add_argument("--room", help="explicit room")
    target.add_argument("--user", help="user room user:<USER>")
    target.add_argument("--doctype", help="doctype (doc room with --docname)")
    target.add_argument("--task", metavar="TASK_ID", help="task room task_progress:<TASK_ID>")
    pub.add_argument("--docname", help="document name (needs --doctype)")
    pub.add_argument("event", metavar="EVENT")
    pub.add_argument("message", metavar="JSON", nargs="?",
                     help="message as JSON (default {}); - reads standard input")

    prog = sub.add_parser("publish-progress", help="publish a progress event (publish_progress)")
    _common(prog)
    prog.add_argument("percent", metavar="PERCENT")
    prog.add_argument("--title")
    prog.add_argument("--description")
    prog.add_argument("--doctype")
    prog.add_argument("--docname")
    prog.add_argument("--task", metavar="TASK_ID")
    return parser


def _message(text):
    if text is None:
        return None
    if text == "-":
        text = sys.stdin.read()
    try:
        return json.loads(text)
    except ValueError as e:
        raise _Fail(EXIT_USAGE, f"invalid JSON message: {e}") from None


def _percent(text):
    try:
        value = float(text)
    except ValueError:
        raise _Fail(EXIT_USAGE, f"invalid PERCENT {text!r}: not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise _Fail(EXIT_USAGE, f"invalid PERCENT {text!r}: not a finite number")
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _publisher(args):
    try:
        if args.bench:
            pub = Publisher.from_bench(args.bench, redis_url=args.redis, site=args.site)
        else:
            pub = Publisher.auto(redis_url=args.redis, site=args.site)
    except (ConfigError, ValueError) as e:
        raise _Fail(EXIT_USAGE, str(e)) from None
    if not pub.site:
        raise _Fail(EXIT_USAGE, "no site: pass --site, set FRAPPE_SITE or default_site "
                                "in the bench config")
    pub.session_user = args.session_user
    return pub


def _run(args):
    if args.docname is not None and not args.doctype:
        raise _Fail(EXIT_USAGE, "--docname needs --doctype")
    if args.command == "publish":
        message = _message(args.message)
        routed = dict(event=args.event, message=message, room=args.room, user=args.user,
                      doctype=args.doctype, docname=args.docname, task_id=args.task)
    else:
        percent = _percent(args.percent)
        routed = None
    pub = _publisher(args)
    if routed is None:
        with_doc = bool(args.doctype and args.docname)
        routed = dict(event="progress",
                      message={"percent": percent, "title": args.title,
                               "description": args.description},
                      user=None if with_doc else pub.session_user,
                      doctype=args.doctype, docname=args.docname, task_id=args.task)
    event, message, room, _ = resolve(session_user=pub.session_user, local_task_id=pub.task_id,
                                      **routed)
    try:
        receivers = pub.emit_via_redis(event, message, room, raise_errors=True)
    except PublishError as e:
        raise _Fail(EXIT_REDIS, str(e)) from None
    except TypeError as e:
        raise _Fail(EXIT_USAGE, str(e)) from None
    finally:
        pub.close()
    if not args.quiet:
        print(f"published {event!r} to room {room!r} on site {pub.site!r} "
              f"via {redact_url(pub.redis_url)} ({receivers} subscriber(s))")
    return EXIT_OK


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except _Fail as e:
        print(f"realtimed: {e}", file=sys.stderr)
        return e.code
