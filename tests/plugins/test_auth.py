"""Auth: every credential source, verifier and outcome (401, 403, 400, expiry 1008, refresh)."""

from __future__ import annotations

import base64
import json

import anyio
import jwt as pyjwt
import pytest

import wskit
from wskit.plugins import JWT, Auth, ClientToken, Forbidden, Grant, Tokens
from wskit.testing import FakeClock, pair

from .support import TRANSPORTS, attempt

pytestmark = pytest.mark.anyio

TOKENS = {"s3cret-token": "alice", "other-token": "bob"}
SECRET = "a-test-key-that-is-long-enough-for-hs256"


def basic(user: str, password: str) -> tuple[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return ("Authorization", f"Basic {encoded}")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bearer_token_accepted_rejected_missing(transport: str) -> None:
    auth = Auth.bearer(TOKENS)
    ok = await attempt(transport, [auth], headers=[("Authorization", "Bearer s3cret-token")])
    assert ok.status == 101
    bad = await attempt(transport, [auth], headers=[("Authorization", "Bearer guess")])
    assert bad.status == 401
    assert bad.header("www-authenticate") == 'Bearer realm="wskit", error="invalid_token"'
    missing = await attempt(transport, [auth])
    assert missing.status == 401
    assert missing.header("www-authenticate") == 'Bearer realm="wskit"'


async def test_the_principal_lands_in_the_context_and_the_secret_leaves_the_request() -> None:
    async with pair(
        plugins=[Auth.bearer(TOKENS)], headers=[("Authorization", "Bearer s3cret-token")]
    ) as p:
        assert p.server_ws.context["principal"] == "alice"
        assert isinstance(p.server_ws.context["grant"], Grant)
        assert p.server_ws.request is not None
        assert p.server_ws.request.header("authorization") is None


async def test_repeated_authorization_header_is_400() -> None:
    outcome = await attempt(
        "memory",
        [Auth.bearer(TOKENS)],
        headers=[("Authorization", "Bearer s3cret-token"), ("Authorization", "Bearer x")],
    )
    assert outcome.status == 400


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cookie_token(transport: str) -> None:
    auth = Auth.cookie("session", TOKENS)
    ok = await attempt(transport, [auth], headers=[("Cookie", "theme=dark; session=other-token")])
    assert ok.status == 101
    bad = await attempt(transport, [auth], headers=[("Cookie", "session=nope")])
    assert bad.status == 401


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_query_token_is_accepted_and_removed_from_the_target(transport: str) -> None:
    auth = Auth.query(TOKENS)
    assert (await attempt(transport, [auth], path="/feed?access_token=nope")).status == 401
    async with pair(plugins=[auth], path="/feed?room=1&access_token=s3cret-token") as p:
        assert p.server_ws.request is not None
        assert p.server_ws.request.target == "/feed?room=1"
        assert p.server_ws.context["principal"] == "alice"


async def test_subprotocol_token_is_never_echoed_or_seen_by_the_app() -> None:
    async with pair(
        plugins=[Auth.subprotocol(TOKENS)],
        subprotocols=["bearer.s3cret-token", "chat"],
        server_subprotocols=["chat"],
    ) as p:
        assert p.client.subprotocol == "chat"
        assert p.server_ws.request is not None
        assert p.server_ws.request.subprotocols == ("chat",)
        assert "s3cret" not in repr(p.server_ws.request.headers)


async def test_subprotocol_token_cannot_be_selected_even_if_the_server_lists_it() -> None:
    # A server that (wrongly) lists the token still never echoes it: the
    # entry is gone from the offer before selection.
    outcome = await attempt(
        "memory",
        [Auth.subprotocol(TOKENS)],
        subprotocols=["bearer.s3cret-token"],
        server_subprotocols=["bearer.s3cret-token"],
    )
    assert outcome.status == 101
    assert outcome.header("sec-websocket-protocol") is None


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_basic_auth(transport: str) -> None:
    auth = Auth.basic({"alice": "wonderland"})
    assert (await attempt(transport, [auth], headers=[basic("alice", "wonderland")])).status == 101
    wrong = await attempt(transport, [auth], headers=[basic("alice", "wonderlanD")])
    assert wrong.status == 401
    assert wrong.header("www-authenticate") == 'Basic realm="wskit", charset="UTF-8"'
    unknown = await attempt(transport, [auth], headers=[basic("mallory", "wonderland")])
    assert unknown.status == 401
    garbage = await attempt(transport, [auth], headers=[("Authorization", "Basic %%%")])
    assert garbage.status == 400


async def test_basic_auth_with_user_info_in_the_url() -> None:
    async def handler(ws: wskit.WebSocket) -> None:
        await ws.send(str(ws.context["principal"]))

    async with wskit.serve(handler, "127.0.0.1", 0, plugins=[Auth.basic({"u": "p w"})]) as server:
        async with wskit.connect(f"ws://u:p%20w@127.0.0.1:{server.port}/") as ws:
            assert await ws.recv() == "u"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_async_verifier_and_forbidden(transport: str) -> None:
    async def verify(token: str) -> object:
        await anyio.sleep(0)
        if token == "banned":
            raise Forbidden
        return {"user": token} if token.startswith("u-") else None

    auth = Auth.bearer(verify)
    ok = await attempt(transport, [auth], headers=[("Authorization", "Bearer u-1")])
    assert ok.status == 101
    banned = await attempt(transport, [auth], headers=[("Authorization", "Bearer banned")])
    assert banned.status == 403
    unknown = await attempt(transport, [auth], headers=[("Authorization", "Bearer x")])
    assert unknown.status == 401


def make_jwt(**claims: object) -> str:
    return pyjwt.encode(claims, SECRET, algorithm="HS256")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_jwt_checks_signature_audience_issuer_and_expiry(transport: str) -> None:
    clock = FakeClock(1_000_000.0)
    auth = Auth.jwt(SECRET, algorithms=["HS256"], audience="chat", issuer="idp", clock=clock)
    good = {"sub": "alice", "aud": "chat", "iss": "idp", "exp": 1_000_100}
    cases = [
        (make_jwt(**good), 101),
        (make_jwt(**{**good, "aud": "other"}), 401),
        (make_jwt(**{**good, "iss": "evil"}), 401),
        (make_jwt(**{**good, "exp": 999_999}), 401),  # expired
        (make_jwt(**{k: v for k, v in good.items() if k != "exp"}), 401),  # no exp
        (pyjwt.encode(good, "another-key-that-is-long-enough-for-hs256", algorithm="HS256"), 401),
        (pyjwt.encode(good, None, algorithm="none"), 401),  # alg=none
    ]
    for token, status in cases:
        outcome = await attempt(transport, [auth], headers=[("Authorization", f"Bearer {token}")])
        assert outcome.status == status, token


def test_jwt_refuses_the_none_algorithm_outright() -> None:
    with pytest.raises(wskit.UsageError, match="none"):
        JWT(SECRET, algorithms=["none"])


async def test_an_expiring_token_closes_the_connection_with_1008_when_it_expires() -> None:
    clock = FakeClock(1_000_000.0)
    token = make_jwt(sub="alice", exp=1_000_000.3)
    auth = Auth.jwt(SECRET, algorithms=["HS256"], clock=clock)
    async with pair(plugins=[auth], headers=[("Authorization", f"Bearer {token}")]) as p:
        start = anyio.current_time()
        with anyio.fail_after(5), pytest.raises(wskit.ConnectionClosedError) as caught:
            await p.client.recv()
        elapsed = anyio.current_time() - start
    assert (caught.value.code, caught.value.reason) == (1008, "credentials expired")
    assert 0.2 <= elapsed < 2


def refresh_message(message: str | bytes) -> str | None:
    if isinstance(message, str) and message.startswith("{"):
        body = json.loads(message)
        if body.get("type") == "refresh":
            return str(body["token"])
    return None


async def test_an_in_band_refresh_keeps_the_connection_open() -> None:
    clock = FakeClock(1_000_000.0)
    auth = Auth.jwt(SECRET, algorithms=["HS256"], clock=clock, refresh=refresh_message)
    first = make_jwt(sub="alice", exp=1_000_000.3)
    async with pair(plugins=[auth], headers=[("Authorization", f"Bearer {first}")]) as p:
        fresh = make_jwt(sub="alice", exp=1_000_100)
        await p.client.send(json.dumps({"type": "refresh", "token": fresh}))
        await anyio.sleep(0.6)  # past the first token's expiry
        await p.client.send("still here")
        assert await p.client.recv() == "still here"  # the refresh itself was consumed
        assert p.server_ws.context["grant"].expires_at == 1_000_100


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": "mallory", "exp": 1_000_100}, "refreshed credentials name another principal"),
        ({"sub": "alice", "exp": 999_000}, "invalid credentials in refresh"),
    ],
)
async def test_a_bad_refresh_closes_with_1008(claims: dict[str, object], reason: str) -> None:
    clock = FakeClock(1_000_000.0)
    auth = Auth.jwt(SECRET, algorithms=["HS256"], clock=clock, refresh=refresh_message)
    first = make_jwt(sub="alice", exp=1_000_050)
    async with pair(plugins=[auth], headers=[("Authorization", f"Bearer {first}")]) as p:
        await p.client.send(json.dumps({"type": "refresh", "token": make_jwt(**claims)}))
        with pytest.raises(wskit.ConnectionClosedError) as caught:
            await p.client.recv()
    assert (caught.value.code, caught.value.reason) == (1008, reason)


def test_refresh_needs_a_synchronous_verifier() -> None:
    async def verify(token: str) -> object:
        return token

    with pytest.raises(wskit.UsageError, match="synchronously"):
        Auth.bearer(verify, refresh=refresh_message)


@pytest.mark.parametrize("carrier", ["header", "subprotocol", "query", "cookie"])
async def test_client_token_reaches_the_matching_source(carrier: str) -> None:
    server_auth = {
        "header": Auth.bearer(TOKENS),
        "subprotocol": Auth.subprotocol(TOKENS),
        "query": Auth.query(TOKENS),
        "cookie": Auth.cookie("access_token", TOKENS),
    }[carrier]
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return "other-token"

    async def handler(ws: wskit.WebSocket) -> None:
        await ws.send(str(ws.context["principal"]))

    async with wskit.serve(
        handler, "127.0.0.1", 0, plugins=[server_auth], subprotocols=["chat"]
    ) as server:
        async with wskit.connect(
            f"ws://127.0.0.1:{server.port}/",
            plugins=[ClientToken(provider, carrier=carrier)],  # type: ignore[arg-type]
            subprotocols=["chat"],
        ) as ws:
            assert await ws.recv() == "bob"
    assert calls == 1


def test_tokens_table_verifies_synchronously() -> None:
    table = Tokens(TOKENS)
    assert table.verify_now("s3cret-token") == Grant("alice")
    assert table.verify_now("s3cret-tokem") is None
    assert table.verify_now("") is None
