"""The standalone mode's HTTP API and connection tokens, standard library only.

    from realtimed.api import ApiClient, mint_token
    api = ApiClient("http://127.0.0.1:9000", key="...")
    api.publish("order_update", {"id": 42}, room="user:alice")
    token = mint_token(secret, "alice", rooms=["team:7"], ttl=3600)   # HS256

docs/standalone.md has the contract.
"""

import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["ApiClient", "ApiError", "mint_token"]

_MISSING = object()


class ApiError(Exception):
    """The API refused a request: status (HTTP, 0 when unreachable) and its message."""

    def __init__(self, status, message):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_token(secret, sub, rooms=(), ttl=3600, alg="HS256", kid=None, now=None, **claims):
    """An HMAC-signed JWT for realtimed --auth-mode jwt (HS256, HS384 or HS512).

    secret: the bytes (or str) of a --jwt-key file, without its trailing newline.
    sub: the user; rooms: joined at connect; ttl: seconds until exp (None: no exp).
    Other claims (aud, iss, nbf, info, ...) go in as given.
    """
    bits = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    if alg not in bits:
        raise ValueError("mint_token signs HS256/HS384/HS512; use a JWT library for RS/ES/EdDSA")
    if isinstance(secret, str):
        secret = secret.encode()
    if not isinstance(sub, str) or not sub:
        raise ValueError("sub must be a non-empty string")
    head = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        head["kid"] = kid
    body = {"sub": sub, **claims}
    if rooms:
        body["rooms"] = list(rooms)
    if ttl is not None:
        body["exp"] = int(now if now is not None else time.time()) + int(ttl)
    signing = f"{_b64(json.dumps(head, separators=(',', ':')).encode())}." \
              f"{_b64(json.dumps(body, separators=(',', ':')).encode())}"
    sig = hmac.new(secret, signing.encode(), bits[alg]).digest()
    return f"{signing}.{_b64(sig)}"


class ApiClient:
    """A client of realtimed's /api/ (the standalone mode's HTTP API)."""

    def __init__(self, url, key, timeout=5.0):
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout

    def _call(self, method, path, body=None, query=None):
        url = f"{self.url}/api/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"X-API-Key": self.key, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as res:
                return json.loads(res.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                message = json.loads(raw).get("error", raw.decode(errors="replace"))
            except (ValueError, AttributeError):
                message = raw.decode(errors="replace")
            raise ApiError(e.code, message) from None
        except (urllib.error.URLError, OSError) as e:
            raise ApiError(0, str(getattr(e, "reason", e))) from None

    def publish(self, event, data=_MISSING, *, args=None, room=None, rooms=None, except_=None, namespace="/"):
        """Emits event to a room, several, or the whole namespace (no room).

        data is one argument; args a list of several; except_ a room or a list.
        """
        body = {"namespace": namespace, "event": event}
        if data is not _MISSING and args is not None:
            raise ValueError("give data or args, not both")
        if data is not _MISSING:
            body["data"] = data
        if args is not None:
            body["args"] = list(args)
        if room is not None:
            body["room"] = room
        if rooms is not None:
            body["rooms"] = list(rooms)
        if except_ is not None:
            body["except"] = except_ if isinstance(except_, str) else list(except_)
        return self._call("POST", "publish", body)

    def _target(self, user, sid):
        if (user is None) == (sid is None):
            raise ValueError("give user or sid")
        return {"user": user} if user is not None else {"sid": sid}

    def join(self, room, *, user=None, sid=None, namespace="/"):
        return self._call("POST", "join", {"namespace": namespace, "room": room, **self._target(user, sid)})

    def leave(self, room, *, user=None, sid=None, namespace="/"):
        return self._call("POST", "leave", {"namespace": namespace, "room": room, **self._target(user, sid)})

    def disconnect(self, *, user=None, sid=None, namespace="/"):
        return self._call("POST", "disconnect", {"namespace": namespace, **self._target(user, sid)})

    def room(self, room, namespace="/"):
        """{"sockets": N, "users": [...], "info": {user: info}} of a room (every node's, with Redis)."""
        return self._call("GET", "room", query={"namespace": namespace, "room": room})
