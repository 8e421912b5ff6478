"""Policy plugins, and the hook API to write your own.

Write a plugin by subclassing :class:`Plugin` (see its hooks and
``docs/howto/plugins.md``); pass instances to ``serve(..., plugins=[...])``
or ``connect(..., plugins=[...])``. The built-ins are written on the same
API:

* :class:`Auth`: bearer tokens, cookies, query parameters, subprotocol
  tokens, HTTP Basic, JWT, any async verifier; 401/403 before the upgrade;
* :class:`Origin`: an allow-list of origins (the CSWSH defence);
* :class:`RateLimit`: message and byte budgets, handshake rate, connection caps;
* :class:`Validate`: JSON Schema on incoming text messages;
* :class:`ClientToken`: the client side of Auth.
"""

from __future__ import annotations

from wskit.plugins.auth import Auth
from wskit.plugins.base import (
    DROP,
    PASS,
    ClientRequest,
    Close,
    Handshake,
    Plugin,
    Reply,
    Verdict,
)
from wskit.plugins.buckets import Rate, TokenBucket
from wskit.plugins.client_token import ClientToken
from wskit.plugins.credentials import Bearer, Cookie, CredentialSource, Query, Subprotocol
from wskit.plugins.origin import Origin
from wskit.plugins.ratelimit import Budget, RateLimit
from wskit.plugins.validate import Validate
from wskit.plugins.verifiers import JWT, Forbidden, Grant, Passwords, Tokens

__all__ = [
    "DROP",
    "JWT",
    "PASS",
    "Auth",
    "Bearer",
    "Budget",
    "ClientRequest",
    "ClientToken",
    "Close",
    "Cookie",
    "CredentialSource",
    "Forbidden",
    "Grant",
    "Handshake",
    "Origin",
    "Passwords",
    "Plugin",
    "Query",
    "Rate",
    "RateLimit",
    "Reply",
    "Subprotocol",
    "TokenBucket",
    "Tokens",
    "Validate",
    "Verdict",
]
