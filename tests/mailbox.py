"""Read the emails PineLab sent: from a real (aiosmtpd) SMTP server or from the `.eml` outbox,
and the links in them; verify a new user's address the way a person would."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterable
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.waiting import eventually, eventually_blocking

LINK = re.compile(r"https?://\S+/(verify-email|reset-password)\?token=[\w-]+")


def parse(raw: bytes) -> EmailMessage:
    """Return the message of raw RFC 5322 bytes."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.port = 0
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refusals: list[str] = []  # answers to give instead of accepting, first first
        self.refused = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refusals:
            self.refused += 1
            return self.refusals.pop(0)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(parse(envelope.content))
        return "250 Message accepted for delivery"


def outbox_messages(outbox: Path) -> list[EmailMessage]:
    """Return the messages written into an outbox directory, oldest first."""
    if not outbox.exists():
        return []
    return [parse(path.read_bytes()) for path in sorted(outbox.glob("*.eml"))]


def text_of(message: EmailMessage) -> str:
    """Return the plain-text body of a message."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "no text/plain part"
    return str(part.get_content())  # type: ignore[attr-defined]


def html_of(message: EmailMessage) -> str:
    """Return the HTML body of a message."""
    part = message.get_body(preferencelist=("html",))
    assert part is not None, "no text/html part"
    return str(part.get_content())  # type: ignore[attr-defined]


def to(messages: Iterable[EmailMessage], address: str) -> list[EmailMessage]:
    """Return the messages sent to an address."""
    return [message for message in messages if message["To"] == address]


def token_in(message: EmailMessage, page: str) -> str:
    """Return the token of the link to `page` in the message's text (and check the HTML's)."""
    links = [m.group(0) for m in LINK.finditer(text_of(message)) if m.group(1) == page]
    assert len(links) == 1, f"expected one {page} link, found {links}"
    token = parse_qs(urlsplit(links[0]).query)["token"][0]
    assert links[0].replace("&", "&amp;") in html_of(message)
    return token


async def wait_for_token(
    messages: Any, address: str, page: str, *, after: int = 0, timeout: float = 10.0
) -> str:
    """Wait until message number `after + 1` to the address arrives; return its link's token.

    `messages` is a callable returning the messages so far (an inbox's list or an outbox read).
    """

    def arrived() -> list[EmailMessage]:
        found = [m for m in to(messages(), address) if page in text_of(m)]
        return found if len(found) > after else []

    found = await eventually(arrived, timeout=timeout, what=f"a {page} email to {address}")
    return token_in(found[after], page)


async def verify_through_outbox(client: httpx.AsyncClient, outbox: Path, address: str) -> None:
    """Follow the verification email in the outbox for an address just registered."""
    token = await wait_for_token(lambda: outbox_messages(outbox), address, "verify-email")
    answer = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert answer.status_code == 200, answer.text


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """Write a certificate for 127.0.0.1 and localhost and its key; return (cert, key) paths."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def verify_through_outbox_blocking(http: httpx.Client, outbox: Path, address: str) -> None:
    """`verify_through_outbox` for synchronous clients (a server in another thread or process)."""

    def arrived() -> list[EmailMessage]:
        return [m for m in to(outbox_messages(outbox), address) if "verify-email" in text_of(m)]

    found = eventually_blocking(arrived, timeout=20, what=f"a verification email to {address}")
    answer = http.post(
        "/api/v1/auth/verify-email", json={"token": token_in(found[0], "verify-email")}
    )
    assert answer.status_code == 200, answer.text
