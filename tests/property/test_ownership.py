"""The lists the core returns belong to the caller.

``events()``, ``chunks_to_send()`` and ``buffers_to_send()`` hand over lists
the core may have built while parsing or sending (it keeps none of its own
while idle). Whatever the caller does to them (the I/O layer replaces events
in place), nothing the connection returns later changes: a server whose
returned lists are scribbled on gives the events the client's frames call
for, and writes what its twin, drained with ``data_to_send()``, writes.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.pairs import Pair
from wskit.core import Config, Event, Message, Ping

_SIZES = st.lists(st.sampled_from([0, 1, 125, 126, 256, 4096, 70_000]), max_size=3)

# One step: the client sends frames the server reads in one call (a ping
# first, maybe), the server echoes messages, or its events or output are taken.
_STEPS = st.tuples(
    st.sampled_from(["read", "echo", "events", "data", "chunks", "buffers"]),
    st.booleans(),
    _SIZES,
)


@given(steps=st.lists(_STEPS, max_size=12))
def test_scribbling_on_returned_lists_changes_nothing(
    steps: list[tuple[str, bool, list[int]]],
) -> None:
    config = Config(compression=None)
    pair = Pair.open(config)
    twin = Pair.open(config).server
    server = pair.server
    expected: list[Event] = []  # the events the server owes, known from what was sent
    for number, (kind, ping, sizes) in enumerate(steps):
        if kind == "read":
            if ping:
                pair.client.send_ping(bytes([number]))
                expected.append(Ping(bytes([number])))
            for size in sizes:
                pair.client.send_bytes(bytes([number]) * size)
                expected.append(Message(bytes([number]) * size))
            frames = pair.client.data_to_send()
            server.receive_data(frames)
            twin.receive_data(frames)
        elif kind == "echo":
            for size in sizes:
                server.send_bytes(bytes([number]) * size)
                twin.send_bytes(bytes([number]) * size)
        elif kind == "events":
            mine = server.events()
            assert mine == expected
            expected = []
            mine.append(Ping(b"scribbled"))
            mine[:1] = [Message(b"scribbled")]
        elif kind == "data":
            assert server.data_to_send() == twin.data_to_send()
        else:
            taken = server.chunks_to_send() if kind == "chunks" else server.buffers_to_send()
            assert b"".join(taken) == twin.data_to_send()
            taken.append(b"scribbled")
            taken.insert(0, b"scribbled")
        assert server.has_data_to_send == twin.has_data_to_send
        assert server.buffered_amount == twin.buffered_amount
    assert server.events() == expected
    assert server.data_to_send() == twin.data_to_send()
