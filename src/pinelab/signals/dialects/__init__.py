"""Alert dialects of the services traders move from (see base.py and docs/alerts.md)."""

from __future__ import annotations

from pinelab.signals.dialects.alertatron import ALERTATRON
from pinelab.signals.dialects.autoview import AUTOVIEW
from pinelab.signals.dialects.base import TextDialect
from pinelab.signals.dialects.pineconnector import PINECONNECTOR

# Tried in this order on a text alert before the canonical text form; the first that claims
# the text reads it. Each claims by syntax no other uses (PineConnector's second field is one of
# its commands, Alertatron's block is KeyName(SYMBOL) {, Autoview's words are key=value).
TEXT_DIALECTS: tuple[TextDialect, ...] = (
    PINECONNECTOR,
    ALERTATRON,
    AUTOVIEW,
)
