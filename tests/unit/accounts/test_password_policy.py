"""The password policy (NIST SP 800-63B) and email normalisation, without a database."""

from __future__ import annotations

import pytest

from pinelab.accounts.exceptions import InvalidEmail, WeakPassword
from pinelab.accounts.passwords import check_password_policy, context_words
from pinelab.accounts.service import normalise_email

EMAIL = "longtrader.name@example.com"


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery",
        "Tr4d1ng-at-0930-sharp",
        "ünïcödé-pässwörd-x",
        "blue-harbour-lantern-42",
        "rain on the tin roof at dawn",
        "z" * 100 + "Qk7#vLp2!xMw9@rT" + "y" * 12,
    ],
)
def test_password_that_follows_the_policy_is_accepted(password: str) -> None:
    check_password_policy(password, email=EMAIL)


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("", "at least 15"),
        ("Tr4d1ng-at-093", "at least 15"),  # 14 characters: one short
        ("a" * 129, "at most 128"),
        (" " * 15, "only whitespace"),
        ("\t\n  \u3000            ", "only whitespace"),
        ("password12345678", "too common"),
        ("PassWord12345678", "too common"),
        ("passwordpassword", "too common"),
        ("qwertyuiopasdfgh", "too common"),
        ("aaaaaaaaaaaaaaaa", "too common"),
        ("1234567890123456", "too common"),
        ("abcdefghijklmnop", "too common"),
        ("iloveyou12345678", "too common"),
        ("pinelabpinelab12", "too common"),
        ("tradingview12345", "too common"),
        ("longtrader.name1", "too common"),
        ("longtraderexample", "too common"),
        ("Longtrader.Name.2025", "too common"),
        ("longtrader.name!!", "too common"),
        ("longtrader.name", "email"),
        ("LongTrader.Name", "email"),
        ("longtrader.name@example.com", "email"),
        ("my longtrader.name@example.com!", "email"),
    ],
)
def test_password_that_breaks_the_policy_is_refused_with_the_reason(
    password: str, reason: str
) -> None:
    with pytest.raises(WeakPassword) as caught:
        check_password_policy(password, email=EMAIL)
    assert reason in caught.value.message
    assert [detail.field for detail in caught.value.details] == ["password"]


def test_the_email_parts_are_what_makes_a_password_guessable() -> None:
    check_password_policy("Longtrader.Name.2025")  # strong for someone else
    with pytest.raises(WeakPassword, match="too common"):
        check_password_policy("Longtrader.Name.2025", email=EMAIL)


def test_the_context_words_are_the_email_parts_and_our_names() -> None:
    words = context_words("jane.doe+pl@mail.example.org")
    assert {"jane", "doe", "mail", "example", "org", "pinelab", "tradingview"} <= set(words)
    assert "jane.doe+pl@mail.example.org" in words


def test_email_is_normalised_to_lower_case_without_surrounding_spaces() -> None:
    assert normalise_email("  Alice.Smith@Example.COM ") == "alice.smith@example.com"


@pytest.mark.parametrize("email", ["", "not-an-email", "a@", "@example.com", "a b@example.com"])
def test_malformed_email_is_refused(email: str) -> None:
    with pytest.raises(InvalidEmail):
        normalise_email(email)
