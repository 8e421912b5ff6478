"""wskit.testing: the in-memory transport, the pair, and the strategies behave as documented."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

import wskit
from tests.frames import upgrade_request
from wskit.core import Message, Ping, Pong, ServerConnection, Terminated
from wskit.testing import memory_stream_pair, pair
from wskit.testing import strategies as ws_st
from wskit.testing.frames import CLOSE, encode_frame

pytestmark = pytest.mark.anyio


async def test_memory_streams_carry_bytes_both_ways_and_end_cleanly() -> None:
    client, server = memory_stream_pair(client_address=("192.0.2.1", 4242))
    await client.send(b"hello")
    assert await server.receive(3) == b"hel"
    assert await server.receive() == b"lo"
    assert server.extra(anyio.abc.SocketAttribute.remote_address) == ("192.0.2.1", 4242)
    await client.send_eof()
    with pytest.raises(anyio.EndOfStream):
        await server.receive()
    await server.send(b"still open this way")
    assert await client.receive() == b"still open this way"
    await client.aclose()
    with pytest.raises(anyio.BrokenResourceError):
        await server.send(b"to nobody")
    await server.aclose()


async def test_memory_streams_apply_backpressure() -> None:
    client, server = memory_stream_pair(buffer=2)
    await client.send(b"1")
    await client.send(b"2")
    with anyio.move_on_after(0.1) as scope:
        await client.send(b"3")  # nobody reads: it waits
    assert scope.cancelled_caught
    assert await server.receive() == b"1"
    await client.send(b"3")  # room again
    await client.aclose()
    await server.aclose()


async def test_pair_forwards_options_to_both_sides() -> None:
    async with pair(max_message=10) as p:
        await p.client.send("x" * 11)
        with pytest.raises(wskit.ConnectionClosedError) as caught:
            await p.client.recv()
    assert caught.value.code == 1009


async def test_pair_raises_the_test_s_own_exception_unwrapped() -> None:
    with pytest.raises(KeyError):
        async with pair():
            raise KeyError("mine")


def accept(conn: ServerConnection) -> None:
    conn.receive_data(upgrade_request())
    conn.events()
    conn.accept(None)
    conn.data_to_send()


@given(st.lists(ws_st.frames(), max_size=8), st.data())
def test_valid_client_frames_are_accepted_by_the_core_in_any_chunking(
    frames: list[ws_st.Frame], data: st.DataObject
) -> None:
    conn = ServerConnection()
    accept(conn)
    wire = b"".join(frame.encode() for frame in frames)
    for chunk in data.draw(ws_st.chunked(wire)):
        conn.receive_data(chunk)
    events = conn.events()
    assert not [e for e in events if isinstance(e, Terminated)]
    data_frames = [f for f in frames if f.opcode in (1, 2)]
    messages = [e for e in events if isinstance(e, Message)]
    assert len(messages) == len(data_frames)
    assert len([e for e in events if isinstance(e, Ping | Pong)]) == len(frames) - len(data_frames)


@given(ws_st.frames(valid=False))
def test_any_frame_gets_an_outcome_never_an_exception(frame: ws_st.Frame) -> None:
    conn = ServerConnection()
    accept(conn)
    conn.receive_data(frame.encode())
    conn.receive_data(encode_frame(CLOSE, b"\x03\xe8"))
    assert any(isinstance(e, Terminated) for e in conn.events())


@given(st.binary(max_size=200), st.data())
def test_chunked_joins_back_to_the_data(blob: bytes, data: st.DataObject) -> None:
    chunks = data.draw(ws_st.chunked(blob))
    assert b"".join(chunks) == blob
    assert all(chunks)


@given(ws_st.messages(), ws_st.close_codes())
def test_message_and_code_strategies_give_sendable_values(message: str | bytes, code: int) -> None:
    assert isinstance(message, str | bytes)
    wskit.plugins.Close(code)  # raises if the code may not be sent


async def test_handle_needs_a_running_server_and_listen_false_opens_no_socket() -> None:
    server = wskit.serve(wskit.testing.echo, listen=False)
    client_end, server_end = memory_stream_pair()
    with pytest.raises(wskit.UsageError, match="inside `async with serve"):
        await server.handle(server_end)
    await client_end.aclose()
    async with server:
        assert server.sockets == []
        with pytest.raises(wskit.UsageError, match="no port"):
            _ = server.port
