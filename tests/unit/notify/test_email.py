"""Email: the outbox writes RFC 5322 files; SMTP delivers to a real (local) server."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller

from pinelab.config import Settings
from pinelab.jobs.exceptions import PermanentJobError
from pinelab.notify.email import (
    Email,
    EmailSender,
    OutboxTransport,
    SmtpTransport,
    render_email,
)

NOTICE = Email(
    to="trader@example.com",
    subject="PineLab gave up on work for strategy Momentum",
    text="Hello,\n\nsignal 42 failed.\n",
    html="<p>signal 42 failed.</p>",
)


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, env="test", data_dir=tmp_path, **values)  # type: ignore[call-arg]


def _read(path: Path) -> EmailMessage:
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


async def test_without_smtp_host_the_email_is_written_to_the_outbox(tmp_path: Path) -> None:
    sender = EmailSender.from_settings(_settings(tmp_path, smtp_from="PineLab <ops@pinelab.test>"))
    assert isinstance(sender.transport, OutboxTransport)
    await sender.send(NOTICE)
    files = list((tmp_path / "outbox").iterdir())
    assert [f.suffix for f in files] == [".eml"]
    message = _read(files[0])
    assert message["To"] == "trader@example.com"
    assert message["From"] == "PineLab <ops@pinelab.test>"
    assert message["Subject"] == NOTICE.subject
    assert message["Message-ID"].endswith("@pinelab.test>")
    assert message["Date"]
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    assert text.get_content() == NOTICE.text
    assert "<p>signal 42 failed.</p>" in html.get_content()


def test_dead_letter_template_renders_text_and_escaped_html() -> None:
    rendered = render_email(
        "dead_letter",
        to="trader@example.com",
        subject="s",
        strategy_name="<Momentum>",
        strategy_id=7,
        kind="execute_signal",
        signal_id=42,
        attempts=5,
        error="BrokerUnavailable: 503",
        created_at="2026-01-02 15:30:00 UTC",
        dead_letter_id=3,
        base_url="https://pinelab.example",
    )
    assert 'strategy "<Momentum>" (id 7)' in rendered.text
    assert "execute_signal for signal 42" in rendered.text
    assert "BrokerUnavailable: 503" in rendered.text
    assert rendered.html is not None
    assert "&lt;Momentum&gt;" in rendered.html
    assert "<Momentum>" not in rendered.html


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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
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
    transport = SmtpTransport(host="127.0.0.1", port=_free_port(), starttls=False, timeout=2)
    sender = EmailSender(transport, sender="ops@pinelab.test")
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await sender.send(NOTICE)
