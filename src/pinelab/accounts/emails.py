"""The `account_email` job: verification, reset and password-changed emails.

The job names a message and a user (or an address someone typed). The worker looks the user
up, issues the token in its own transaction, commits, then sends: a failed send is retried by
the queue (a new token supersedes the unsent one) and, after the last attempt, dead-lettered.
An address without an account, or one already verified, gets nothing, and nothing shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.accounts import recovery
from pinelab.accounts.exceptions import InvalidEmail
from pinelab.accounts.models import User
from pinelab.accounts.service import normalise_email
from pinelab.clock import now
from pinelab.db import Database
from pinelab.notify.email import Email, EmailSender, render_email

log = structlog.get_logger(__name__)

TIME_FORMAT = "%Y-%m-%d %H:%M UTC"


@dataclass(frozen=True)
class AccountEmails:
    """What the account emails need: where links point and how long tokens live."""

    db: Database
    sender: EmailSender
    base_url: str
    verification_ttl: timedelta
    reset_ttl: timedelta

    async def run(self, payload: dict[str, Any]) -> None:
        """Run one `account_email` job: build the message (and its token), then send it."""
        message = str(payload["message"])
        async with self.db.transaction() as session:
            user = await _recipient(session, payload)
            email = await self._compose(session, message, user, payload) if user else None
        if email is None:
            log.info("account_email_skipped", message=message)
            return
        await self.sender.send(email)

    async def _compose(
        self, session: AsyncSession, message: str, user: User, payload: dict[str, Any]
    ) -> Email | None:
        ip = payload.get("ip")
        if message == recovery.VERIFY_EMAIL:
            if user.email_verified_at is not None:
                return None
            return await self._with_token(
                session, user, recovery.VERIFY_EMAIL, self.verification_ttl, ip=ip
            )
        if message == recovery.RESET_PASSWORD:
            return await self._with_token(
                session, user, recovery.RESET_PASSWORD, self.reset_ttl, ip=ip
            )
        if message == recovery.PASSWORD_CHANGED:
            return render_email(
                "password_changed",
                to=user.email,
                subject="Your PineLab password was changed",
                when=now().strftime(TIME_FORMAT),
                ip=ip or "unknown",
                base_url=self.base_url,
            )
        if message == recovery.NEW_DEVICE:
            return render_email(
                "new_device",
                to=user.email,
                subject="New sign-in to your PineLab account",
                when=now().strftime(TIME_FORMAT),
                ip=ip or "unknown",
                user_agent=payload.get("user_agent") or "unknown",
                base_url=self.base_url,
            )
        raise ValueError(f"unknown account email {message!r}")

    async def _with_token(
        self,
        session: AsyncSession,
        user: User,
        purpose: str,
        ttl: timedelta,
        *,
        ip: str | None,
    ) -> Email:
        issued = await recovery.issue_token(
            session, user_id=user.id, purpose=purpose, ttl=ttl, ip=ip
        )
        page = "verify-email" if purpose == recovery.VERIFY_EMAIL else "reset-password"
        subject = (
            "Confirm your email address for PineLab"
            if purpose == recovery.VERIFY_EMAIL
            else "Reset your PineLab password"
        )
        return render_email(
            purpose,
            to=user.email,
            subject=subject,
            link=f"{self.base_url}/{page}?{urlencode({'token': issued.token})}",
            token=issued.token,
            hours=round(ttl.total_seconds() / 3600),
            expires_at=issued.expires_at.strftime(TIME_FORMAT),
            ip=ip or "unknown",
            base_url=self.base_url,
        )


async def _recipient(session: AsyncSession, payload: dict[str, Any]) -> User | None:
    user: User | None
    if payload.get("user_id") is not None:
        user = await session.get(User, int(payload["user_id"]))
    else:
        try:
            address = normalise_email(str(payload.get("email") or ""))
        except InvalidEmail:
            return None
        result = await session.execute(select(User).where(User.email == address))
        user = result.scalar_one_or_none()
    return user if user is not None and user.is_active else None
