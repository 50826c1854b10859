"""The password policy (NIST SP 800-63B) and email normalisation, without a database."""

from __future__ import annotations

import pytest

from pinelab.accounts.exceptions import InvalidEmail, WeakPassword
from pinelab.accounts.service import check_password_policy, normalise_email


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery",
        "Tr4d1ng-at-0930",
        "ünïcödé-pässwörd",
        "x" * 11 + "y",
        "a" * 64 + "B",
        "z" * 127 + "q",
    ],
)
def test_password_that_follows_the_policy_is_accepted(password: str) -> None:
    check_password_policy(password, email="trader@example.com")


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("", "at least 12"),
        ("short-pass1", "at least 12"),
        ("a" * 129, "at most 128"),
        (" " * 12, "only whitespace"),
        ("\t\n  \u3000         ", "only whitespace"),
        ("password1234", "too common"),
        ("PassWord1234", "too common"),
        ("correcthorsebatterystaple", "too common"),
        ("aaaaaaaaaaaa", "too common"),
        ("123456789012", "too common"),
        ("0987654321098", "too common"),
        ("abcdefghijklmn", "too common"),
        ("qwertyuiopasdf", "too common"),
        ("longtrader.name", "email"),
        ("LongTrader.Name", "email"),
        ("longtrader.name@example.com", "email"),
    ],
)
def test_password_that_breaks_the_policy_is_refused_with_the_reason(
    password: str, reason: str
) -> None:
    with pytest.raises(WeakPassword) as caught:
        check_password_policy(password, email="longtrader.name@example.com")
    assert reason in caught.value.message
    assert [detail.field for detail in caught.value.details] == ["password"]


def test_policy_without_an_email_checks_only_the_password() -> None:
    check_password_policy("longtrader.name")


def test_email_is_normalised_to_lower_case_without_surrounding_spaces() -> None:
    assert normalise_email("  Alice.Smith@Example.COM ") == "alice.smith@example.com"


@pytest.mark.parametrize("email", ["", "not-an-email", "a@", "@example.com", "a b@example.com"])
def test_malformed_email_is_refused(email: str) -> None:
    with pytest.raises(InvalidEmail):
        normalise_email(email)
