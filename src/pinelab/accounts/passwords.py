"""The password policy: NIST SP 800-63B-4 for single-factor accounts.

At least 15 characters and at most 128, any characters (no composition rules), never only
whitespace; a password that is common or easy to guess is refused with the reason. Guessability
is zxcvbn's estimate (its frequency lists of common passwords, names and words, keyboard
patterns, repeats, sequences, dates and l33t spellings), fed with the user's own context: the
parts of their email address and this service's names, so `jane.doe2024` is weak for
jane.doe@example.com. A score under 3 (fewer than about 10^8 guesses) is refused.
"""

from __future__ import annotations

import re

from zxcvbn import zxcvbn

from pinelab.accounts.exceptions import WeakPassword

MIN_PASSWORD_LENGTH = 15
MAX_PASSWORD_LENGTH = 128
MIN_SCORE = 3
# Words a guesser aiming at this service tries first.
SERVICE_WORDS = ("pinelab", "tradingview", "trading", "trader")
_SEPARATORS = re.compile(r"[^\w]+|_")


def check_password_policy(password: str, *, email: str | None = None) -> None:
    """Refuse a password that breaks the policy, naming the rule it breaks."""
    reason = policy_violation(password, email=email)
    if reason is not None:
        raise WeakPassword(reason)


def policy_violation(password: str, *, email: str | None = None) -> str | None:
    """Return why a password is refused, or None when it is accepted."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"must be at most {MAX_PASSWORD_LENGTH} characters"
    if not password.strip():
        return "must not be only whitespace"
    folded = password.casefold()
    if email and _contains_the_address(folded, email.casefold()):
        return "must not be your email address"
    estimate = zxcvbn(password, user_inputs=context_words(email), max_length=MAX_PASSWORD_LENGTH)
    if estimate["score"] < MIN_SCORE:
        warning = estimate["feedback"]["warning"] or "it would be guessed quickly"
        return f"is too common or too easy to guess ({warning.rstrip('.')})"
    return None


def context_words(email: str | None) -> list[str]:
    """Return the words a guesser who knows this user tries: the email's parts, our names."""
    words = list(SERVICE_WORDS)
    if email:
        address = email.casefold()
        local, _, domain = address.partition("@")
        words += [address, local, domain]
        words += [part for part in _SEPARATORS.split(f"{local} {domain}") if len(part) >= 3]
    return words


def _contains_the_address(folded: str, address: str) -> bool:
    local = address.partition("@")[0]
    return address in folded or folded == local
