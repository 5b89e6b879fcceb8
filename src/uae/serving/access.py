"""Who may call the service: optional bearer-token auth, a read-only mode, and the bind check.

- With an API key (``uae serve --api-key`` or ``$UAE_API_KEY``) every request but ``GET /healthz``
  needs ``Authorization: Bearer <key>``; others get 401.
- Read-only (``--read-only``): ``POST``/``DELETE /passages`` get 403.
- :func:`check_bind` refuses to start a server that would let anyone edit the index: no key, not
  read-only, and an address other than loopback.
"""

from __future__ import annotations

import hmac
import ipaddress
import json

OPEN_PATHS = frozenset({"/healthz"})
MUTATING = frozenset({("POST", "/passages"), ("DELETE", "/passages")})


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False


def check_bind(host: str, api_key: str | None, read_only: bool) -> None:
    """Refuse (``ValueError``) an unauthenticated, editable server on a non-loopback address."""
    if api_key or read_only or is_loopback(host):
        return
    raise ValueError(f"--host {host} is reachable from other machines, and without an API key anyone there could add or "
                     "remove passages: set --api-key (or UAE_API_KEY), or pass --read-only")


class AccessMiddleware:
    """Pure ASGI middleware: bearer-token check (all paths but :data:`OPEN_PATHS`) and the read-only guard."""

    def __init__(self, app, api_key: str | None = None, read_only: bool = False):
        self.app = app
        self.expected = f"Bearer {api_key}".encode() if api_key else None
        self.read_only = read_only

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.expected is not None and scope["path"] not in OPEN_PATHS and not self._authorised(scope):
            return await _reply(send, 401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                                [(b"www-authenticate", b"Bearer")])
        if self.read_only and (scope["method"], scope["path"]) in MUTATING:
            return await _reply(send, 403, "the index is read-only (the server was started with --read-only)")
        return await self.app(scope, receive, send)

    def _authorised(self, scope) -> bool:
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        return hmac.compare_digest(given, self.expected)


async def _reply(send, status: int, detail: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})
