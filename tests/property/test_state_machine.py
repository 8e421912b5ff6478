"""A client and a server driven by arbitrary interleavings of everything a caller can do.

Rules: send a message (either side, any kind, fragmented or not), send one
fragment at a time (so that fragmented messages stay open across other
steps), ping, close with any valid code (and with invalid ones), tick a
simulated clock that only moves forward (keepalive pings, timeouts), deliver a
random prefix of the bytes in flight in either direction, deliver everything,
and end either side's input with EOF.

Checked after every step:

* ``state`` only moves forward along CONNECTING → OPEN → CLOSING → CLOSED, and
  is CLOSING only if that side called ``close()``;
* sending or pinging when not OPEN raises ``InvalidState``, a fragment of the
  wrong type during a fragmented message raises ``UsageError``, an invalid
  close code raises ``UsageError``; nothing else ever raises;
* each side emits at most one ``Terminated``, as its last event, and is CLOSED
  exactly when it did; a side that received the peer's close frame is CLOSED;
* ``buffered_amount`` is what the next ``data_to_send()`` returns (plus at
  most one owed pong);
* the messages each side received are a prefix of what the other side sent,
  unchanged and in order;
* once every byte in flight has been delivered: a side that is not CLOSED has
  received every message the other side sent, and a side is left CLOSING, or
  one side alone is CLOSED, only because the other side's input was cut by EOF.
"""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.pairs import Pair
from tests.property.strategies import (
    close_codes,
    close_reasons,
    modest_payloads,
    outgoing,
    small_binary,
    small_text,
)
from wskit.core import CloseReceived, Config, DeflateOptions, Message, State, Terminated
from wskit.errors import InvalidState, UsageError

PONG_MAX = 2 + 4 + 125  # header, mask, payload
ORDER = [State.CONNECTING, State.OPEN, State.CLOSING, State.CLOSED]
sides = st.booleans()  # True: the client, False: the server


@st.composite
def machine_configs(draw):
    return Config(
        ping_interval=draw(st.sampled_from([None, 1.0, 2.5])),
        ping_timeout=draw(st.sampled_from([None, 1.0, 4.0])),
        close_timeout=draw(st.sampled_from([None, 2.0])),
        compression=draw(st.sampled_from([None, DeflateOptions()])),
    )


def join(pieces):
    return "".join(pieces) if isinstance(pieces[0], str) else b"".join(pieces)


class PairMachine(RuleBasedStateMachine):
    @initialize(config=machine_configs())
    def open(self, config):
        self.pair = Pair.open(config)
        self.now = 0.0
        self.in_flight = {True: bytearray(), False: bytearray()}  # bytes sent by each side
        self.events = {True: [], False: []}
        self.sent = {True: [], False: []}  # complete messages each side sent
        self.partial = {True: None, False: None}  # pieces of a fragmented message
        self.closed_by_us = {True: False, False: False}
        self.eof = {True: False, False: False}
        self.seen_states = {True: State.OPEN, False: State.OPEN}
        self.pings = 0
        self.collect()

    # ---------------------------------------------------------------- helpers

    def conn(self, side):
        return self.pair.side(side)

    def collect(self):
        """After every call into either side: take its bytes and its events."""
        for side in (True, False):
            conn = self.conn(side)
            queued = conn.buffered_amount
            data = conn.data_to_send()
            # buffered_amount counts what is queued; only an owed pong is added.
            assert queued <= len(data) <= queued + PONG_MAX
            assert conn.buffered_amount == 0
            self.in_flight[side] += data
            self.events[side] += conn.events()

    def call(self, expected, fn, *args, **kwargs):
        """Call ``fn``; it must raise exactly ``expected`` (or nothing when None)."""
        if expected is None:
            fn(*args, **kwargs)
        else:
            with pytest.raises(expected) as info:
                fn(*args, **kwargs)
            assert type(info.value) is expected, info.value
        self.collect()
        return expected is None

    def send_piece(self, side, piece, fin, compress):
        conn = self.conn(side)
        ongoing = self.partial[side]
        expected = None
        if conn.state is not State.OPEN:
            expected = InvalidState
        elif ongoing is not None and isinstance(piece, str) != isinstance(ongoing[0], str):
            expected = UsageError
        send = conn.send_text if isinstance(piece, str) else conn.send_bytes
        if self.call(expected, send, piece, compress=compress, fin=fin):
            pieces = [*(ongoing or []), piece]
            self.partial[side] = None if fin else pieces
            if fin:
                self.sent[side].append(join(pieces))

    def deliver(self, side, size):
        data = bytes(self.in_flight[side][:size])
        del self.in_flight[side][:size]
        self.conn(not side).receive_data(data, now=self.now)
        self.collect()

    # ------------------------------------------------------------------ rules

    @rule(side=sides, message=outgoing(modest_payloads))
    def send_message(self, side, message):
        for i, piece in enumerate(message.pieces):
            self.send_piece(side, piece, i == len(message.pieces) - 1, message.compress)

    @rule(
        side=sides,
        piece=st.one_of(small_text, small_binary),
        fin=st.booleans(),
        compress=st.sampled_from([None, True, False]),
    )
    def send_fragment(self, side, piece, fin, compress):
        self.send_piece(side, piece, fin, compress)

    @rule(side=sides)
    def ping(self, side):
        conn = self.conn(side)
        self.pings += 1
        expected = None if conn.state is State.OPEN else InvalidState
        self.call(expected, conn.send_ping, b"ping-%d" % self.pings, now=self.now)

    @rule(side=sides, code=close_codes, reason=close_reasons)
    def close(self, side, code, reason):
        conn = self.conn(side)
        if conn.state is State.OPEN:
            self.closed_by_us[side] = True
        self.call(None, conn.close, code, reason)

    @rule(
        side=sides,
        code=st.one_of(st.integers(0, 999), st.sampled_from([1004, 1005, 1006, 1015, 2999, 5000])),
        long_reason=st.booleans(),
    )
    def close_wrongly(self, side, code, long_reason):
        """An invalid close code, or a reason over 123 bytes: UsageError in any state."""
        if long_reason:
            self.call(UsageError, self.conn(side).close, 1000, "é" * 62)
        else:
            self.call(UsageError, self.conn(side).close, code)

    @rule(elapsed=st.floats(0, 3))
    def tick(self, elapsed):
        self.now += elapsed
        for side in (True, False):
            self.conn(side).tick(self.now)
            self.collect()

    @rule(side=sides, data=st.data())
    def deliver_some(self, side, data):
        pending = len(self.in_flight[side])
        size = data.draw(st.one_of(st.just(pending), st.integers(0, pending)), label="size")
        self.deliver(side, size)

    @rule()
    def deliver_everything(self):
        while self.in_flight[True] or self.in_flight[False]:
            for side in (True, False):
                self.deliver(side, len(self.in_flight[side]))
        self.check_settled()

    @rule(side=sides, now=st.sampled_from([False, False, False, True]))
    def receive_eof(self, side, now):
        """The transport of one side ends (drawn rarely: it ends the game early)."""
        if not now:
            return
        self.eof[side] = True
        self.conn(side).receive_eof()
        self.collect()

    # ------------------------------------------------------------- invariants

    def check_settled(self):
        """Every byte in flight was delivered."""
        for side in (True, False):
            conn, peer = self.conn(side), self.conn(not side)
            if conn.state is not State.CLOSED:
                assert self.received(side) == self.sent[not side]
            if conn.state is State.CLOSING:
                assert peer.state is State.CLOSED
                assert self.eof[not side]
            if conn.state is State.CLOSED and peer.state is not State.CLOSED:
                assert self.eof[side]

    def received(self, side):
        return [e.data for e in self.events[side] if isinstance(e, Message)]

    @invariant()
    def states_only_move_forward(self):
        for side in (True, False):
            state = self.conn(side).state
            assert ORDER.index(state) >= ORDER.index(self.seen_states[side])
            if state is State.CLOSING:
                assert self.closed_by_us[side]
            self.seen_states[side] = state

    @invariant()
    def one_terminated_last(self):
        for side in (True, False):
            events = self.events[side]
            ends = [i for i, e in enumerate(events) if isinstance(e, Terminated)]
            assert len(ends) <= 1, events
            assert ends in ([], [len(events) - 1]), events
            assert (self.conn(side).state is State.CLOSED) == bool(ends)
            if any(isinstance(e, CloseReceived) for e in events):
                assert self.conn(side).state is State.CLOSED

    @invariant()
    def received_messages_are_a_prefix_of_sent_ones(self):
        for side in (True, False):
            received = self.received(side)
            assert received == self.sent[not side][: len(received)]


TestPairMachine = PairMachine.TestCase
