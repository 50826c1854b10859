"""Tell a strategy's owner by email that PineLab gave up on work for it (a dead letter)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.accounts.models import User
from pinelab.config import Settings
from pinelab.jobs.models import DeadLetter
from pinelab.notify.email import SEND_EMAIL, enqueue_email, render_email
from pinelab.strategies.models import Strategy


async def notify_dead_letter_owner(
    session: AsyncSession, letter: DeadLetter, *, settings: Settings
) -> bool:
    """Queue an email telling the strategy's owner that its work was given up.

    Runs in the transaction that writes the dead letter; False when nobody is to be told.
    """
    if letter.kind == SEND_EMAIL or letter.strategy_id is None:
        return False  # a failed email must not beget another email
    strategy = await session.get(Strategy, letter.strategy_id)
    owner = await session.get(User, strategy.user_id) if strategy is not None else None
    if strategy is None or owner is None or not owner.is_active:
        return False
    email = render_email(
        "dead_letter",
        to=owner.email,
        subject=f"PineLab gave up on work for strategy {strategy.name}",
        strategy_name=strategy.name,
        strategy_id=strategy.id,
        kind=letter.kind,
        signal_id=letter.payload.get("signal_id"),
        attempts=letter.attempts,
        error=letter.last_error or "",
        created_at=letter.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        dead_letter_id=letter.id,
        base_url=settings.base_url,
    )
    await enqueue_email(session, email, max_attempts=settings.max_retry_attempts)
    return True
