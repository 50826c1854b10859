"""Email: rendered from templates, sent by a `send_email` job over SMTP or into the outbox.

With PINELAB_SMTP_HOST set, mail goes out over SMTP (aiosmtplib): STARTTLS by default, implicit
TLS on port 465 or when PINELAB_SMTP_TLS=implicit, the server's certificate always verified
(against PINELAB_SMTP_CA_FILE when set). Without it, each message is written as an RFC 5322
`.eml` file into DATA_DIR/outbox, so a laptop install shows what would have been sent. Emails
are enqueued in the transaction of the event that causes them, and retried (then
dead-lettered) like any other job.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any, Literal, Protocol

import aiosmtplib
import structlog
from jinja2 import (
    Environment,
    PackageLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)
from sqlalchemy.ext.asyncio import AsyncSession

from pinelab.clock import now
from pinelab.config import Settings
from pinelab.jobs import queue
from pinelab.jobs.exceptions import PermanentJobError
from pinelab.jobs.models import Job

log = structlog.get_logger(__name__)

SEND_EMAIL = "send_email"
OUTBOX_DIR = "outbox"

_templates = Environment(
    loader=PackageLoader("pinelab.notify", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Email:
    """One email to send: recipient, subject, a plain-text body and an optional HTML one."""

    to: str
    subject: str
    text: str
    html: str | None = None

    def as_payload(self) -> dict[str, Any]:
        """Return the email as a job payload."""
        return {"to": self.to, "subject": self.subject, "text": self.text, "html": self.html}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Email:
        """Read an email back from a job payload."""
        html = payload.get("html")
        return cls(
            to=str(payload["to"]),
            subject=str(payload["subject"]),
            text=str(payload["text"]),
            html=str(html) if html is not None else None,
        )


def render_email(template: str, *, to: str, subject: str, **values: Any) -> Email:
    """Render `<template>.txt` (and `<template>.html` when it exists) into an email."""
    text = _templates.get_template(f"{template}.txt").render(**values)
    try:
        html: str | None = _templates.get_template(f"{template}.html").render(**values)
    except TemplateNotFound:
        html = None
    return Email(to=to, subject=subject, text=text, html=html)


def build_message(email: Email, *, sender: str) -> EmailMessage:
    """Return the RFC 5322 message of an email."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Date"] = format_datetime(now())
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content(email.text)
    if email.html is not None:
        message.add_alternative(email.html, subtype="html")
    return message


class Transport(Protocol):
    """A way to hand a message over for delivery."""

    async def deliver(self, message: EmailMessage) -> None:
        """Deliver one message or raise."""
        ...


class OutboxTransport:
    """Writes each message as an `.eml` file into a directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def deliver(self, message: EmailMessage) -> None:
        """Write the message atomically into the outbox."""
        await asyncio.to_thread(self._write, message)

    def _write(self, message: EmailMessage) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = now().strftime("%Y%m%dT%H%M%S%fZ")
        path = self.directory / f"{stamp}-{uuid.uuid4().hex[:12]}.eml"
        partial = path.with_suffix(".eml.tmp")
        partial.write_bytes(message.as_bytes())
        os.replace(partial, path)  # readers never see half a message
        return path


class SmtpTransport:
    """Sends over SMTP; 5xx answers are permanent, everything else is retried."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str = "",
        password: str = "",
        tls: Literal["starttls", "implicit", "none"] = "starttls",
        ca_file: str | None = None,
        timeout: float = 30,
    ) -> None:
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.tls, self.ca_file, self.timeout = tls, ca_file, timeout

    async def deliver(self, message: EmailMessage) -> None:
        """Send the message, translating permanent SMTP refusals into PermanentJobError."""
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self.username or None,
                password=self.password or None,
                use_tls=self.tls == "implicit",
                start_tls=self.tls == "starttls",
                cert_bundle=self.ca_file,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            if all(refused.code >= 500 for refused in exc.recipients):
                raise PermanentJobError(f"recipient refused: {exc.recipients[0].message}") from exc
            raise
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code >= 500:
                raise PermanentJobError(f"SMTP {exc.code}: {exc.message}") from exc
            raise


class EmailSender:
    """Builds messages from the configured sender address and hands them to a transport."""

    def __init__(self, transport: Transport, *, sender: str) -> None:
        self.transport = transport
        self.sender = sender

    @classmethod
    def from_settings(cls, settings: Settings) -> EmailSender:
        """Return SMTP when PINELAB_SMTP_HOST is set, else the outbox in the data dir."""
        transport: Transport
        if settings.smtp_host:
            transport = SmtpTransport(
                host=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=settings.smtp_password,
                tls=settings.smtp_tls_mode,
                ca_file=str(settings.smtp_ca_file) if settings.smtp_ca_file else None,
                timeout=settings.smtp_timeout_seconds,
            )
        else:
            transport = OutboxTransport(settings.data_dir / OUTBOX_DIR)
        return cls(transport, sender=settings.smtp_from)

    async def send(self, email: Email) -> EmailMessage:
        """Send one email now and return the message sent."""
        message = build_message(email, sender=self.sender)
        await self.transport.deliver(message)
        log.info("email_sent", message_id=message["Message-ID"], subject=email.subject)
        return message


async def enqueue_email(session: AsyncSession, email: Email, *, max_attempts: int) -> Job:
    """Queue an email in the caller's transaction; the worker sends it (with retries)."""
    return await queue.enqueue(session, SEND_EMAIL, email.as_payload(), max_attempts=max_attempts)


async def send_email(payload: dict[str, Any], *, settings: Settings) -> None:
    """Send the email of a send_email job's payload (the root binds the settings)."""
    await EmailSender.from_settings(settings).send(Email.from_payload(payload))
