"""The alert body as it may be stored: every secret the message holds replaced by a marker.

Decided on the message as read, never by a pattern over the raw text. A JSON body is decoded
(so an escaped key such as ``"pass\\u0070hrase"`` is ``passphrase``), every field at any depth
whose key names a secret (``passphrase``, ``api_secret``, ``signalToken``, any spelling: see
``dialects.mapping.is_secret_key``) or that the message's dialect declares secret has its value
replaced where it stands, the rest of the body kept as sent (a secret that is an object or an
array is replaced whole, and the body then written back compactly, keys and numbers as sent).
A body without a secret is kept byte for byte. JSON that does not decode is read token by
token: each quoted key is decoded and, when it names a secret, the value after its colon is
replaced. A text body
has the value of each ``key=value`` word with a secret key replaced, and each secret word its
dialect named.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from typing import Any, Final

from pinelab.signals.dialects.mapping import SECRET_WORDS, is_secret_key

REDACTED: Final = "[redacted]"
_QUOTED_REDACTED: Final = json.dumps(REDACTED)
_WORD: Final = re.compile(r"[^\s,]+")
_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*+"', re.DOTALL)
_BARE_VALUE: Final = re.compile(r"[^,}\]\s]*")
_NOT_ALNUM: Final = re.compile(r"[\W_]+")


class _Literal:
    """A JSON number or constant kept exactly as written, to be written back unchanged."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _Object:
    """A decoded JSON object as its list of pairs: every key kept, repeated ones too."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs


_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_Object, parse_float=_Literal, parse_int=_Literal, parse_constant=_Literal
)
_COLON: Final = re.compile(r"\s*:\s*")


def redact_json(text: str, secret_keys: Collection[str] = ()) -> str:
    """Return a JSON body with the value of every secret field replaced."""
    if not _may_hold_secret(text, secret_keys):
        return text
    try:
        document = _DECODER.decode(text)
        found = [False]
        written = _write(document, secret_keys, found, top=True)
        container = found[0] and _secret_container(document, secret_keys, top=True)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python recurses
        return _redact_tokens(text, secret_keys)
    if not found[0]:
        return text
    # Keep the body as sent, but for the secret values, when each of them is one token; a
    # secret object or array is replaced whole in the compact rewrite.
    return written if container else _redact_tokens(text, secret_keys)


def redact_text(text: str, secret_words: Collection[str] = ()) -> str:
    """Return a text body with each secret key=value's value, and each secret word, replaced."""

    def one(match: re.Match[str]) -> str:
        key, equals, value = match.group().partition("=")
        return f"{key}={REDACTED}" if equals and value and is_secret_key(key) else match.group()

    redacted = _WORD.sub(one, text)
    for word in sorted(secret_words, key=len, reverse=True):
        if word:
            redacted = redacted.replace(word, REDACTED)
    return redacted


def _may_hold_secret(text: str, secret_keys: Collection[str]) -> bool:
    """Tell whether any key of the body could name a secret; False proves none does.

    Each key, folded as ``is_secret_key`` folds it, is a run of the whole body folded the same
    way, so a body whose folded text holds no secret word has no secret key; an escape could
    spell one, so a body with a backslash is always read.
    """
    if "\\" in text or any(key in text for key in secret_keys):
        return True
    folded = _NOT_ALNUM.sub("", text.lower())
    return any(word in folded for word in SECRET_WORDS)


def _secret_container(value: Any, secret_keys: Collection[str], *, top: bool) -> bool:
    if isinstance(value, _Object):
        return any(
            isinstance(item, _Object | list)
            if _secret(key, secret_keys, top)
            else _secret_container(item, secret_keys, top=False)
            for key, item in value.pairs
        )
    if isinstance(value, list):
        return any(_secret_container(item, secret_keys, top=False) for item in value)
    return False


def _secret(key: str, secret_keys: Collection[str], top: bool) -> bool:
    return is_secret_key(key) or (top and key in secret_keys)


def _write(value: Any, secret_keys: Collection[str], found: list[bool], *, top: bool) -> str:
    if isinstance(value, _Object):
        members = []
        for key, item in value.pairs:
            if _secret(key, secret_keys, top):
                found[0] = True
                written = _QUOTED_REDACTED
            else:
                written = _write(item, secret_keys, found, top=False)
            members.append(f"{json.dumps(key, ensure_ascii=False)}:{written}")
        return "{" + ",".join(members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_write(item, secret_keys, found, top=False) for item in value) + "]"
    if isinstance(value, _Literal):
        return value.text
    return json.dumps(value, ensure_ascii=False)


def _redact_tokens(text: str, secret_keys: Collection[str]) -> str:
    pieces: list[str] = []
    position = 0
    for match in _strings(text):
        if match.start() < position:
            continue  # inside a value already replaced
        colon = _COLON.match(text, match.end())
        if colon is None:
            continue
        try:
            key = json.loads(match.group())
        except ValueError:
            continue
        if not isinstance(key, str) or not (is_secret_key(key) or key in secret_keys):
            continue
        start = colon.end()
        pieces.append(text[position:start])
        pieces.append(_QUOTED_REDACTED)
        position = _value_end(text, start)
    pieces.append(text[position:])
    return "".join(pieces)


def _strings(text: str) -> Iterator[re.Match[str]]:
    """Yield each quoted string in order, each character read once; an unterminated one ends."""
    position = text.find('"')
    while position >= 0:
        match = _STRING.match(text, position)
        if match is None:
            return
        yield match
        position = text.find('"', match.end())


def _value_end(text: str, start: int) -> int:
    if text.startswith('"', start):
        string = _STRING.match(text, start)
        return len(text) if string is None else string.end()  # unterminated: all of the rest
    bare = _BARE_VALUE.match(text, start)
    return start if bare is None else bare.end()
