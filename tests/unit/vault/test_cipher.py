"""AES-256-GCM envelopes: round trips, binding to their row, tampering, key ids and old keys."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest

from pinelab.vault import EncryptionKey, KeyRing, UndecryptableSecret, Vault
from pinelab.vault.cipher import key_id_of, seal, unseal
from pinelab.vault.keys import read_key_file, write_key_file

CONTEXT = "broker_account:7:credentials"
SECRET = b'{"api_key": "PKTESTKEY0000001", "api_secret": "s3cr3t-value"}'


@pytest.fixture
def key() -> EncryptionKey:
    return EncryptionKey.generate()


def test_round_trip_returns_the_plaintext(key: EncryptionKey) -> None:
    envelope = seal(key, SECRET, context=CONTEXT)

    assert unseal(KeyRing(key), envelope, context=CONTEXT) == SECRET


def test_envelope_is_versioned_names_its_key_and_hides_the_plaintext(key: EncryptionKey) -> None:
    envelope = seal(key, SECRET, context=CONTEXT)

    assert re.fullmatch(r"v1:[0-9a-f]{8}:[A-Za-z0-9_-]+=*", envelope)
    assert key_id_of(envelope) == hashlib.sha256(key.material).hexdigest()[:8] == key.key_id
    assert b"s3cr3t" not in envelope.encode()
    assert b"s3cr3t" not in base64.urlsafe_b64decode(envelope.split(":")[2])


def test_each_encryption_uses_a_fresh_nonce(key: EncryptionKey) -> None:
    assert seal(key, SECRET, context=CONTEXT) != seal(key, SECRET, context=CONTEXT)


def test_ciphertext_moved_to_another_row_does_not_open(key: EncryptionKey) -> None:
    envelope = seal(key, SECRET, context=CONTEXT)

    with pytest.raises(UndecryptableSecret, match="another row"):
        unseal(KeyRing(key), envelope, context="broker_account:8:credentials")


def test_a_flipped_bit_is_detected(key: EncryptionKey) -> None:
    envelope = seal(key, SECRET, context=CONTEXT)
    raw = bytearray(base64.urlsafe_b64decode(envelope.split(":")[2]))
    raw[20] ^= 1
    tampered = f"v1:{key.key_id}:{base64.urlsafe_b64encode(bytes(raw)).decode()}"

    with pytest.raises(UndecryptableSecret):
        unseal(KeyRing(key), tampered, context=CONTEXT)


def test_relabelling_the_key_id_does_not_open(key: EncryptionKey) -> None:
    other = EncryptionKey.generate()
    envelope = seal(key, SECRET, context=CONTEXT)
    relabelled = envelope.replace(key.key_id, other.key_id, 1)

    with pytest.raises(UndecryptableSecret):
        unseal(KeyRing(other, (key,)), relabelled, context=CONTEXT)


@pytest.mark.parametrize("stored", ["", "plaintext-api-secret", "v2:abcdef01:AAAA", "v1:zz:AAAA"])
def test_anything_but_an_envelope_is_refused_never_returned(
    stored: str, key: EncryptionKey
) -> None:
    with pytest.raises(UndecryptableSecret, match="not a v1 envelope"):
        unseal(KeyRing(key), stored, context=CONTEXT)


def test_unknown_key_is_named_in_the_error(key: EncryptionKey) -> None:
    envelope = seal(key, SECRET, context=CONTEXT)

    with pytest.raises(UndecryptableSecret, match=f"key {key.key_id} is not configured"):
        unseal(KeyRing(EncryptionKey.generate()), envelope, context=CONTEXT)


def test_vault_encrypts_with_the_primary_and_decrypts_with_old_keys(key: EncryptionKey) -> None:
    old_envelope = seal(key, SECRET, context=CONTEXT)
    new = EncryptionKey.generate()
    vault = Vault(KeyRing(new, (key,)))

    assert vault.decrypt(old_envelope, context=CONTEXT) == SECRET
    assert not vault.is_current(old_envelope)
    fresh = vault.encrypt(SECRET, context=CONTEXT)
    assert key_id_of(fresh) == new.key_id
    assert vault.is_current(fresh)


def test_vault_rereads_its_key_file_when_it_meets_a_new_key(tmp_path: Path) -> None:
    path = tmp_path / "encryption.key"
    first = KeyRing(EncryptionKey.generate(), key_file=path)
    write_key_file(path, first)
    vault = Vault(read_key_file(path), reload=lambda: read_key_file(path))
    rotated = first.promoted(EncryptionKey.generate())
    write_key_file(path, rotated)  # another process rotated the key file
    envelope = Vault(rotated).encrypt(SECRET, context=CONTEXT)

    assert vault.decrypt(envelope, context=CONTEXT) == SECRET
    assert vault.primary_key_id == rotated.primary.key_id


def test_key_material_never_appears_in_a_repr(key: EncryptionKey) -> None:
    assert key.encoded() not in repr(KeyRing(key))
    assert repr(key.material) not in repr(key)
