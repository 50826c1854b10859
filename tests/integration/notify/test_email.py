"""Email over SMTP: delivered to a real (local) server, refusals and outages classified."""

from __future__ import annotations

import email
import email.policy
import ssl
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
from tests.mailbox import Inbox as MailInbox
from tests.mailbox import self_signed_certificate

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
    transport = SmtpTransport(host="127.0.0.1", port=port, tls="none")
    sender = EmailSender(transport, sender="ops@pinelab.test")
    with pytest.raises(PermanentJobError, match="recipient refused"):
        await sender.send(Email(to="nobody@example.com", subject="s", text="t"))
    assert inbox.received == []


async def test_unreachable_smtp_server_is_a_temporary_failure() -> None:
    transport = SmtpTransport(host="127.0.0.1", port=free_port(), tls="none", timeout=2)
    sender = EmailSender(transport, sender="ops@pinelab.test")
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await sender.send(NOTICE)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1 and the server context that presents it."""
    cert, key = self_signed_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return cert, context


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
async def test_email_goes_over_tls_verified_against_the_configured_ca(
    tmp_path: Path, certificate: tuple[Path, ssl.SSLContext], mode: str
) -> None:
    cert, context = certificate
    inbox, port = MailInbox(), free_port()
    if mode == "starttls":
        controller = Controller(
            inbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
        )
    else:
        controller = Controller(inbox, hostname="127.0.0.1", port=port, ssl_context=context)
    controller.start()
    try:
        settings = _settings(
            tmp_path,
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_tls=mode,
            smtp_ca_file=cert,
            smtp_from="ops@pinelab.test",
        )
        await EmailSender.from_settings(settings).send(NOTICE)
        untrusted = SmtpTransport(host="127.0.0.1", port=port, tls=mode, timeout=5)  # type: ignore[arg-type]
        with pytest.raises((aiosmtplib.SMTPException, ssl.SSLCertVerificationError)):
            await EmailSender(untrusted, sender="ops@pinelab.test").send(NOTICE)
    finally:
        controller.stop()
    assert [message["Subject"] for message in inbox.messages] == [NOTICE.subject]


async def test_starttls_required_by_us_is_refused_by_a_server_without_it(
    smtp_server: tuple[Inbox, int],
) -> None:
    inbox, port = smtp_server
    transport = SmtpTransport(host="127.0.0.1", port=port, tls="starttls", timeout=5)
    with pytest.raises(aiosmtplib.SMTPException):
        await EmailSender(transport, sender="ops@pinelab.test").send(NOTICE)
    assert inbox.received == []
