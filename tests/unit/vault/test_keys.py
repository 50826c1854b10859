"""Where keys come from: environment, key file, passphrase, the dev default; and what is refused."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import CapturingLogger

from pinelab.config import Settings
from pinelab.vault import EncryptionKey, KeyConfigurationError, build_vault, keys
from pinelab.vault.keys import KEY_FILE_NAME, SALT_FILE_NAME, load_keyring


def make_settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, **values)  # type: ignore[call-arg]


def encoded(key: EncryptionKey) -> str:
    return base64.b64encode(key.material).decode()


def test_environment_key_is_the_primary_and_old_keys_decrypt_only(tmp_path: Path) -> None:
    primary, old1, old2 = (EncryptionKey.generate() for _ in range(3))
    settings = make_settings(
        tmp_path,
        encryption_key=encoded(primary),
        encryption_old_keys=f"{encoded(old1)}, {base64.urlsafe_b64encode(old2.material).decode()}",
    )

    ring = load_keyring(settings)

    assert ring.key_ids == (primary.key_id, old1.key_id, old2.key_id)
    assert not (tmp_path / KEY_FILE_NAME).exists()


@pytest.mark.parametrize("value", ["short", base64.b64encode(b"x" * 16).decode(), "!!not base64!!"])
def test_malformed_key_names_the_variable_never_the_value(tmp_path: Path, value: str) -> None:
    with pytest.raises(KeyConfigurationError) as caught:
        load_keyring(make_settings(tmp_path, encryption_key=value))

    assert "PINELAB_ENCRYPTION_KEY" in caught.value.message
    assert value not in caught.value.message


def test_two_key_sources_are_refused(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        encryption_key=encoded(EncryptionKey.generate()),
        encryption_passphrase="a long enough passphrase",
    )

    with pytest.raises(KeyConfigurationError, match="set only one of"):
        load_keyring(settings)


def test_production_without_a_key_refuses_naming_the_variables(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigurationError) as caught:
        build_vault(make_settings(tmp_path, env="production"))

    assert "PINELAB_ENCRYPTION_KEY" in caught.value.message
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_production_ignores_a_key_file_it_was_not_told_about(tmp_path: Path) -> None:
    load_keyring(make_settings(tmp_path))  # a development run left a key file behind

    with pytest.raises(KeyConfigurationError):
        load_keyring(make_settings(tmp_path, env="production"))


def test_development_generates_a_private_key_file_loudly_and_reuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = CapturingLogger()
    monkeypatch.setattr(keys, "log", logger)

    first = load_keyring(make_settings(tmp_path))
    second = load_keyring(make_settings(tmp_path))

    path = tmp_path / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.primary.key_id == second.primary.key_id
    assert first.key_file == path
    [warning] = [call for call in logger.calls if call.args == ("generated_encryption_key",)]
    assert warning.method_name == "warning"
    assert "PINELAB_ENCRYPTION_KEY" in warning.kwargs["hint"]
    assert encoded(first.primary) not in str(logger.calls)


def test_key_file_holds_a_primary_and_old_keys(tmp_path: Path) -> None:
    primary, old = EncryptionKey.generate(), EncryptionKey.generate()
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"version": 1, "primary": encoded(primary), "old": [encoded(old)]}))
    os.chmod(path, 0o600)

    ring = load_keyring(make_settings(tmp_path, encryption_key_file=path))

    assert ring.key_ids == (primary.key_id, old.key_id)
    assert ring.key_file == path


def test_key_file_may_hold_just_one_base64_key(tmp_path: Path) -> None:
    key = EncryptionKey.generate()
    path = tmp_path / "docker-secret"
    path.write_text(encoded(key) + "\n")

    assert load_keyring(make_settings(tmp_path, encryption_key_file=path)).primary == key


def test_missing_key_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigurationError, match="PINELAB_ENCRYPTION_KEY_FILE"):
        load_keyring(make_settings(tmp_path, encryption_key_file=tmp_path / "absent"))


def test_passphrase_is_stretched_with_a_stored_salt(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, encryption_passphrase="correct horse battery staple")

    first = load_keyring(settings)
    again = load_keyring(settings)
    salt_file = json.loads((tmp_path / SALT_FILE_NAME).read_text())
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    elsewhere = load_keyring(
        make_settings(other_dir, encryption_passphrase="correct horse battery staple")
    )

    assert first.primary == again.primary
    assert (salt_file["kdf"], salt_file["n"], salt_file["r"], salt_file["p"]) == (
        "scrypt",
        2**17,
        8,
        1,
    )
    assert elsewhere.primary != first.primary  # another salt, another key


def test_an_explicit_salt_makes_the_key_the_same_on_every_machine(tmp_path: Path) -> None:
    salt = base64.b64encode(b"0123456789abcdef").decode()
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    keys = [
        load_keyring(
            make_settings(
                directory,
                encryption_passphrase="correct horse battery staple",
                encryption_salt=salt,
            )
        ).primary
        for directory in (one, two)
    ]

    assert keys[0] == keys[1]
    assert not (one / SALT_FILE_NAME).exists()


def test_short_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigurationError, match="PINELAB_ENCRYPTION_PASSPHRASE"):
        load_keyring(make_settings(tmp_path, encryption_passphrase="short"))
