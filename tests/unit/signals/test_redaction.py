"""The stored body: every secret of the parsed message redacted, whatever its spelling."""

from __future__ import annotations

import json
import time

import pytest

from pinelab.signals.parser import read_alert

ALERT = '{"ticker": "AAPL", "action": "buy", "quantity": 1.50, %s}'


def stored(body: str, content_type: str | None = "application/json") -> str:
    return read_alert(body.encode(), content_type).stored_body


@pytest.mark.parametrize(
    "secret_field",
    [
        '"passphrase": "hunter2"',
        '"pass\\u0070hrase": "hunter2"',
        '"PassPhrase": "hunter2"',
        '"api_secret": "hunter2"',
        '"apiSecret": "hunter2"',
        '"API-KEY": "hunter2"',
        '"sec_ret": "hunter2"',
        '"secret": "hunter2"',
        '"token": "hunter2"',
        '"password": 12345678',
        '"nested": {"deeper": [{"api-key": "hunter2"}]}',
        '"passphrase": "hunter2", "passphrase": "hunter2"',
        '"passphrase": {"value": "hunter2"}',
    ],
)
def test_every_spelling_of_a_secret_is_redacted_and_the_rest_kept(secret_field: str):
    body = stored(ALERT % secret_field)
    assert "hunter2" not in body
    assert "12345678" not in body
    assert "[redacted]" in body
    kept = json.loads(body)
    assert (kept["ticker"], kept["action"]) == ("AAPL", "buy")
    assert '"quantity": 1.50' in body or '"quantity":1.50' in body  # numbers kept as sent


def test_only_the_secret_value_changes():
    body = '{"ticker": "AAPL",  "passphrase" : "hu\\"nter2", "action": "buy"}'
    assert stored(body) == '{"ticker": "AAPL",  "passphrase" : "[redacted]", "action": "buy"}'


def test_a_secret_object_is_replaced_whole():
    body = '{"ticker": "AAPL", "action": "buy", "secret": {"a": ["hunter2", 1]}, "quantity": 2}'
    expected = '{"ticker":"AAPL","action":"buy","secret":"[redacted]","quantity":2}'
    assert stored(body) == expected


def test_a_body_without_secrets_is_kept_byte_for_byte():
    body = '{ "ticker" : "AAPL",\n  "action": "buy", "quantity": 1.50 }'
    assert stored(body) == body


@pytest.mark.parametrize(
    "body",
    [
        '{"ticker": "AAPL", "passphrase": "hunter2", "action": }',
        '{"ticker": "AAPL", "pass\\u0070hrase": hunter2, ',
        '{"api_secret":"hunter2"',
    ],
)
def test_a_secret_in_json_that_does_not_parse_is_still_redacted(body: str):
    reading = read_alert(body.encode(), "application/json")
    assert reading.rejection is not None
    assert "hunter2" not in reading.stored_body


def test_a_secret_in_a_refused_alert_is_redacted():
    reading = read_alert(ALERT.replace("1.50", '"NaN"').encode() % b'"passphrase": "hunter2"', None)
    assert reading.rejection is not None
    assert "hunter2" not in reading.stored_body


@pytest.mark.parametrize(
    "text",
    [
        "buy AAPL 1 passphrase=hunter2",
        "buy,AAPL,1,passphrase=hunter2,price=10",
        "buy AAPL Passphrase=hunter2",
    ],
)
def test_a_text_passphrase_is_redacted(text: str):
    body = stored(text, "text/plain")
    assert "hunter2" not in body
    assert body.startswith("buy")


def test_a_body_that_is_not_utf8_has_its_secret_redacted():
    reading = read_alert(b'{"passphrase": "hunter2", "ticker": "\xff"}', None)
    assert reading.rejection is not None
    assert "hunter2" not in reading.stored_body


@pytest.mark.parametrize("depth", [10, 500, 900, 5000])
def test_deeply_nested_json_with_a_secret_is_redacted_never_crashing(depth: int):
    arrays = '{"secret": "hunter2", "a": ' + "[" * depth + "]" * depth + "}"
    objects = '{"a": ' + '{"b": ' * depth + "1" + "}" * depth + ', "passphrase": "hunter2"}'
    for body in (arrays, objects):
        reading = read_alert(body.encode(), "application/json")
        assert reading.rejection is not None
        assert "hunter2" not in reading.stored_body


@pytest.mark.parametrize(
    "body",
    ['"secret"' + '\\"' * 30_000, '{"secret":' + '"\\"' * 21_000, '{"a": "' + '\\"' * 30_000],
    ids=["escaped-quotes", "open-strings", "unterminated"],
)
def test_broken_json_of_the_body_limit_is_read_in_linear_time(body: str):
    # Reading every quote as the start of a string made these take ~20 s (quadratic).
    started = time.perf_counter()
    read_alert(body.encode(), "application/json")
    assert time.perf_counter() - started < 2
