"""Reading a request body from ASGI with a cap, and the client address behind proxies."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from starlette.types import Message, Receive

from pinelab.api.request import RequestAborted, receive_capped_body, resolve_client_ip


def _receive(messages: Sequence[Message]) -> tuple[Receive, list[int]]:
    """Return an ASGI receive that plays `messages`, and a list counting the calls."""
    calls: list[int] = []

    async def receive() -> Message:
        calls.append(1)
        return messages[len(calls) - 1]

    return receive, calls


def _chunk(body: bytes, more: bool) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_a_body_in_one_message_is_returned_as_is() -> None:
    receive, _ = _receive([_chunk(b"buy AAPL 1", more=False)])
    assert await receive_capped_body(receive, 64) == (b"buy AAPL 1", False)


async def test_chunks_are_joined() -> None:
    receive, _ = _receive([_chunk(b"buy ", True), _chunk(b"AAPL ", True), _chunk(b"1", False)])
    assert await receive_capped_body(receive, 64) == (b"buy AAPL 1", False)


async def test_a_body_over_the_cap_is_cut_and_the_rest_never_read() -> None:
    receive, calls = _receive([_chunk(b"x" * 6, True), _chunk(b"y" * 6, True), _chunk(b"z", False)])
    assert await receive_capped_body(receive, 10) == (b"xxxxxxyyyy", True)
    assert len(calls) == 2


async def test_a_single_message_over_the_cap_is_cut() -> None:
    receive, _ = _receive([_chunk(b"x" * 11, more=False)])
    assert await receive_capped_body(receive, 10) == (b"x" * 10, True)


async def test_a_client_that_leaves_mid_body_is_a_clear_400_error() -> None:
    receive, _ = _receive([_chunk(b"buy ", True), {"type": "http.disconnect"}])
    with pytest.raises(RequestAborted, match="disconnected"):
        await receive_capped_body(receive, 64)


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("198.51.100.1", "203.0.113.9", [], "198.51.100.1"),  # no trusted proxy: the peer
        ("10.0.0.1", "203.0.113.9", ["10.0.0.1"], "203.0.113.9"),
        ("10.0.0.1", "203.0.113.9, 10.0.0.2", ["10.0.0.1", "10.0.0.2"], "203.0.113.9"),
        ("10.0.0.1", "not-an-ip", ["10.0.0.1"], "10.0.0.1"),
        ("10.0.0.1", None, ["10.0.0.1"], "10.0.0.1"),
        (None, "203.0.113.9", ["10.0.0.1"], None),
    ],
)
def test_the_client_address_believes_forwarded_for_only_from_trusted_proxies(
    peer: str | None, forwarded: str | None, trusted: list[str], expected: str | None
) -> None:
    assert resolve_client_ip(peer, forwarded, trusted) == expected
