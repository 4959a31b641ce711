"""JSON encoding of the Redis `events` message, byte-compatible with frappe.as_json.

frappe.as_json is json.dumps with indent=1, sort_keys=True, separators
(",", ": "), ensure_ascii=True and Frappe's json_handler for values the
json module cannot encode. When sorting fails (a dict mixing key types)
it retries with only the top-level keys ordered by their text.
"""

import datetime
import decimal
import json
import re
import uuid
from collections.abc import Iterable
from pathlib import PurePath

__all__ = ["as_json", "json_default", "format_timedelta"]


def format_timedelta(delta):
    """H:MM:SS[.ffffff] as Frappe renders a timedelta (hours are not wrapped)."""
    total = delta.total_seconds()
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    whole = int(seconds)
    rounded = round(seconds, 6)
    # Frappe keeps a float only when the rounded value differs from the
    # truncated one; the width-2 format then leaves e.g. "1.5" unpadded.
    sec = whole if rounded == whole else rounded
    return f"{int(hours):01}:{int(minutes):02}:{sec:02}"


def json_default(obj):
    """Fallback encoder covering the types Frappe's json_handler accepts."""
    if isinstance(obj, (datetime.date, datetime.time)):  # datetime is a date
        return str(obj)
    if isinstance(obj, datetime.timedelta):
        return format_timedelta(obj)
    if isinstance(obj, decimal.Decimal):
        return float(obj)
    to_json = getattr(obj, "__json__", None)
    if callable(to_json):
        return to_json()
    as_dict = getattr(obj, "as_dict", None)
    if callable(as_dict) and not isinstance(obj, type):
        try:
            return as_dict(no_nulls=True)  # a Frappe document
        except TypeError:
            return as_dict()
    if isinstance(obj, (PurePath, uuid.UUID)):
        return str(obj)
    if isinstance(obj, Iterable):
        return list(obj)
    if isinstance(obj, re.Match):
        return obj.string
    if isinstance(obj, type) or isinstance(obj, BaseException) or callable(obj):
        return repr(obj)
    raise TypeError(f"Object of type {type(obj)} with value of {obj!r} is not JSON serializable")


def as_json(obj, indent=1, separators=(",", ": "), ensure_ascii=True):
    """Serialize like frappe.as_json (see module docstring)."""
    try:
        return json.dumps(obj, indent=indent, sort_keys=True, default=json_default,
                          separators=separators, ensure_ascii=ensure_ascii)
    except TypeError:
        if not isinstance(obj, dict):
            raise
        ordered = dict(sorted(obj.items(), key=lambda item: str(item[0])))
        return json.dumps(ordered, indent=indent, default=json_default,
                          separators=separators, ensure_ascii=ensure_ascii)
