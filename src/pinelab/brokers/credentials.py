"""Broker credentials at rest: sealed in the vault and bound to their account row.

The plaintext is JSON `{"api_key", "api_secret", "password"?}`; the envelope's context is
"broker_account:<id>:credentials", so a ciphertext copied onto another account does not open.
Only a hint (the last 4 characters of the key id) is ever shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, cast

import ccxt.async_support as ccxt_async
import orjson
from sqlalchemy import Table

from pinelab.brokers.models import BrokerAccount
from pinelab.vault import UNDECRYPTABLE, UndecryptableSecret, Vault
from pinelab.vault.rotation import EncryptedColumn

CREDENTIALS_COLUMN: Final = EncryptedColumn(
    table=cast(Table, BrokerAccount.__table__),
    column="credentials_encrypted",
    purpose="credentials",
)
HINT_LENGTH: Final = 4
# Credentials ccxt can ask for that the CCXT adapter does not take.
UNSUPPORTED_CREDENTIALS: Final = ("uid", "accountId", "login", "twofa", "privateKey",
                                  "walletAddress", "token")  # fmt: skip


@dataclass(frozen=True)
class BrokerCredentials:
    """A key pair (and passphrase, for exchanges that want one); never shown in a repr."""

    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def hint(self) -> str:
        """Return what the API shows of the credentials: the key id's last 4 characters."""
        return f"…{self.api_key[-HINT_LENGTH:]}"


def seal_credentials(vault: Vault, *, account_id: int, credentials: BrokerCredentials) -> str:
    """Encrypt credentials for one broker account."""
    record: dict[str, str] = {"api_key": credentials.api_key, "api_secret": credentials.api_secret}
    if credentials.password is not None:
        record["password"] = credentials.password
    return vault.encrypt(orjson.dumps(record), context=CREDENTIALS_COLUMN.context(account_id))


def open_credentials(vault: Vault, account: BrokerAccount) -> BrokerCredentials:
    """Decrypt an account's credentials, or raise UndecryptableSecret."""
    if not account.credentials_encrypted:
        raise UndecryptableSecret(f"{UNDECRYPTABLE}: the account has none stored")
    plaintext = vault.decrypt(
        account.credentials_encrypted, context=CREDENTIALS_COLUMN.context(account.id)
    )
    record: Any = orjson.loads(plaintext)
    return BrokerCredentials(
        api_key=str(record["api_key"]),
        api_secret=str(record["api_secret"]),
        password=None if record.get("password") is None else str(record["password"]),
    )


@dataclass(frozen=True)
class ExchangeFacts:
    """What ccxt says an exchange needs, read from its description (no network)."""

    needs_password: bool
    unsupported_credentials: tuple[str, ...]
    has_sandbox: bool


def is_ccxt_exchange(exchange_id: str) -> bool:
    """Tell whether ccxt knows an exchange id."""
    return exchange_id in ccxt_async.exchanges


@lru_cache(maxsize=128)
def exchange_facts(exchange_id: str) -> ExchangeFacts:
    """Return what an exchange ccxt knows requires; creating it opens no connection."""
    exchange: Any = getattr(ccxt_async, exchange_id)()
    required: dict[str, Any] = exchange.requiredCredentials
    return ExchangeFacts(
        needs_password=bool(required.get("password")),
        unsupported_credentials=tuple(
            name for name in UNSUPPORTED_CREDENTIALS if required.get(name)
        ),
        has_sandbox=bool(exchange.urls.get("test")),
    )
