"""Room names, as the browser client and the realtime server expect them.

Since Frappe v14 a site is a Socket.IO namespace, so room names carry no
site prefix. Names are opaque: a docname may contain "/" or spaces.
"""

__all__ = [
    "cstr",
    "get_doctype_room",
    "get_doc_room",
    "get_user_room",
    "get_site_room",
    "get_task_progress_room",
    "get_website_room",
]


def cstr(value, encoding="utf-8"):
    """Text form of a value the way Frappe's cstr() renders it (None -> "")."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode(encoding)
    return str(value)


def get_doctype_room(doctype):
    return f"doctype:{doctype}"


def get_doc_room(doctype, docname):
    # Frappe formats the doctype as-is but passes the docname through cstr,
    # so a missing docname gives "doc:<dt>/" and a missing doctype "doc:None/...".
    return f"doc:{doctype}/{cstr(docname)}"


def get_user_room(user):
    return f"user:{user}"


def get_site_room():
    """Every System User of the site (the desk's `all` room)."""
    return "all"


def get_task_progress_room(task_id):
    return f"task_progress:{task_id}"


def get_website_room():
    return "website"
