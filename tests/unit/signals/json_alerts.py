"""Reading a JSON alert message as the webhook does, for the dialects' unit tests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pinelab.signals.exceptions import AlertRejected
from pinelab.signals.intent import AlertIntent
from pinelab.signals.parser import parse_alert


def parse(message: dict[str, Any]) -> AlertIntent:
    """Read a message sent as JSON."""
    return parse_alert(json.dumps(message).encode(), "application/json")


def refusal(message: dict[str, Any]) -> AlertRejected:
    """Read a message that must be refused; return the refusal."""
    with pytest.raises(AlertRejected) as caught:
        parse(message)
    return caught.value
