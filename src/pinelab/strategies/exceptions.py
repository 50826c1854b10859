"""Errors of the strategies package."""

from __future__ import annotations

from pinelab.errors import ErrorDetail, ValidationFailed


class UnknownBrokerAccounts(ValidationFailed):
    """Broker account ids that are not among the caller's live accounts (never says whose)."""

    def __init__(self, broker_account_ids: list[int]) -> None:
        listed = ", ".join(str(account_id) for account_id in sorted(broker_account_ids))
        super().__init__(
            f"Not live broker accounts of yours: {listed}",
            details=[
                ErrorDetail(
                    "broker_account_ids",
                    f"not live broker accounts of yours: {listed}",
                    "unknown_broker_account",
                )
            ],
        )
        self.broker_account_ids = broker_account_ids
