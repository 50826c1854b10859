"""Email over SMTP: delivered to a real (local) server, refusals and outages classified."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller

from pinelab.config import Settings
from pinelab.jobs.exceptions import PermanentJobError
from pinelab.notify.email import Email, EmailSender, SmtpTransport
from tests.fakes.faults import free_port

NOTICE = Email(
    to="trader@example.com",
    subject="PineLab gave up on work for strategy Momentum",
    text="Hello,\n\nsignal 42 failed.\n",
    html="<p>signal 42 failed.</p>",
)


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, env="test", data_dir=tmp_path, **values)  # type: ignore[call-arg]


class Inbox:
    """An aiosmtpd handler that keeps what it receives and refuses one address."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def test_with_smtp_host_the_email_is_delivered_over_smtp(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    settings = _settings(
        tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        smtp_from="ops@pinelab.test",
    )
    sender = EmailSender.from_settings(settings)
    assert isinstance(sender.transport, SmtpTransport)
    await sender.send(NOTICE)
    assert len(inbox.received) == 1
    mail_from, recipients, content = inbox.received[0]
    assert mail_from == "ops@pinelab.test"
    assert recipients == ["trader@example.com"]
    delivered = email.message_from_bytes(content, policy=email.policy.default)
    assert delivered["Subject"] == NOTICE.subject
    assert not (tmp_path / "outbox").exists()


async def test_smtp_refusing_the_recipient_is_a_permanent_failure(
    smtp_server: tuple[Inbox, int],
) -> None:
    inbox, port = smtp_server
    transport = SmtpTransport(host="127.0.0.1", port=port, starttls=False)
    sender = EmailSender(transport, sender="ops@pinelab.test")
    with pytest.raises(PermanentJobError, match="recipient refused"):
        await sender.send(Email(to="nobody@example.com", subject="s", text="t"))
    assert inbox.received == []


async def test_unreachable_smtp_server_is_a_temporary_failure() -> None:
    transport = SmtpTransport(host="127.0.0.1", port=free_port(), starttls=False, timeout=2)
    sender = EmailSender(transport, sender="ops@pinelab.test")
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await sender.send(NOTICE)
