"""Import every table so the metadata (and Alembic) sees the whole schema."""

from pinelab.accounts.models import AccountToken, AuthSession, User
from pinelab.accounts.two_factor_models import BackupCode, LoginChallenge, TwoFactor
from pinelab.brokers.models import (
    BrokerAccount,
    PaperAccount,
    PaperFill,
    PaperOrder,
    PaperPosition,
    PaperQuote,
)
from pinelab.db.base import Base
from pinelab.jobs.models import DeadLetter, Job, JobAttempt, PeriodicTask
from pinelab.signals.models import Signal
from pinelab.strategies.models import Strategy, StrategyBrokerAccount
from pinelab.trading.models import Fill, Order, OrderEvent, Position

__all__ = [
    "AccountToken",
    "AuthSession",
    "BackupCode",
    "Base",
    "BrokerAccount",
    "DeadLetter",
    "Fill",
    "Job",
    "JobAttempt",
    "LoginChallenge",
    "Order",
    "OrderEvent",
    "PaperAccount",
    "PaperFill",
    "PaperOrder",
    "PaperPosition",
    "PaperQuote",
    "PeriodicTask",
    "Position",
    "Signal",
    "Strategy",
    "StrategyBrokerAccount",
    "TwoFactor",
    "User",
]
