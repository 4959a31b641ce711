#!/usr/bin/env python3
"""Live-count demo publisher: publishes the event `count` with {"count": i}
to room `website` of one site, once per interval, through the realtimed
Python library (the same PUBLISH on Redis channel `events` that
frappe.publish_realtime makes). Every browser on the demo page shows it.

    PYTHONPATH=clients/python python3 examples/live-count/publisher.py \
        --redis redis://127.0.0.1:6379 --site demo --interval 1
"""

import argparse
import logging
import os
import signal
import sys
import time

try:
    from realtimed import Publisher
except ImportError:  # not installed: use the copy in this repository
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))
    from realtimed import Publisher


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis", default=os.environ.get("FRAPPE_REDIS_QUEUE", "redis://127.0.0.1:11000"),
                    help="redis_queue URL (default $FRAPPE_REDIS_QUEUE or redis://127.0.0.1:11000)")
    ap.add_argument("--site", default=os.environ.get("FRAPPE_SITE", "demo"),
                    help="site, i.e. the Socket.IO namespace /<site> (default $FRAPPE_SITE or demo)")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between events (default 1)")
    ap.add_argument("--event", default="count", help="event name (default count)")
    ap.add_argument("--room", default="website", help="room (default website: every guest)")
    ap.add_argument("--start", type=int, default=0, help="first count (default 0)")
    ap.add_argument("--limit", type=int, default=0, help="stop after this many events (default: never)")
    ap.add_argument("--quiet", action="store_true", help="do not print each count")
    args = ap.parse_args(argv)

    logging.basicConfig(level=logging.WARNING, format="publisher: %(message)s")
    # SIGTERM ends the loop like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    pub = Publisher(args.redis, site=args.site)
    print(f"publisher: '{args.event}' to room '{args.room}' of site '{args.site}' every "
          f"{args.interval:g} s via {args.redis}", flush=True)
    i, sent = args.start, 0
    next_at = time.monotonic()
    try:
        while not args.limit or sent < args.limit:
            pub.publish_realtime(args.event, {"count": i}, room=args.room)
            if not args.quiet:
                print(f"publisher: count={i}", flush=True)
            i += 1
            sent += 1
            # A fixed schedule: no drift from the time publishing takes.
            next_at += args.interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        pub.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
