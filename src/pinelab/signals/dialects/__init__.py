"""Alert dialects of the services traders move from (see base.py and docs/alerts.md).

The parser tries each JSON dialect's `claims(data)` in this order before reading PineLab's own
JSON, and each text dialect's `claims(text)` before PineLab's text form; the first that claims
a message translates it. More specific claims come first (TradersPost's message is PineLab's
camelCase form plus its own words, so it is tried after the services with their own keys).
A dialect module must not import `signals.parser`, which imports this list.
"""

from __future__ import annotations

from pinelab.signals.dialects.alertatron import ALERTATRON
from pinelab.signals.dialects.altrady import ALTRADY
from pinelab.signals.dialects.autoview import AUTOVIEW
from pinelab.signals.dialects.base import JsonDialect, TextDialect
from pinelab.signals.dialects.okx import OKX
from pinelab.signals.dialects.opensource import OPEN_SOURCE_BOT
from pinelab.signals.dialects.pineconnector import PINECONNECTOR
from pinelab.signals.dialects.threecommas import THREE_COMMAS
from pinelab.signals.dialects.traderspost import TRADERSPOST
from pinelab.signals.dialects.wundertrading import WUNDERTRADING

JSON_DIALECTS: tuple[JsonDialect, ...] = (
    THREE_COMMAS,
    OKX,
    WUNDERTRADING,
    ALTRADY,
    OPEN_SOURCE_BOT,
    TRADERSPOST,
)
# Each text dialect claims by syntax no other uses (PineConnector's second field is one of its
# commands, Alertatron's block is KeyName(SYMBOL) {, Autoview's words are key=value).
TEXT_DIALECTS: tuple[TextDialect, ...] = (
    PINECONNECTOR,
    ALERTATRON,
    AUTOVIEW,
)
