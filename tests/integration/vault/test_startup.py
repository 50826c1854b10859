"""The app's startup and the vault: production refuses to run without a key."""

from __future__ import annotations

import base64
import os

import pytest

from pinelab.config import Settings
from pinelab.main import build_services
from pinelab.vault import KeyConfigurationError


def production(settings: Settings, **values: object) -> Settings:
    return settings.model_copy(update={"env": "production", **values})


def test_production_without_an_encryption_key_refuses_to_build_the_app(settings: Settings) -> None:
    with pytest.raises(KeyConfigurationError) as caught:
        build_services(production(settings))

    assert "PINELAB_ENCRYPTION_KEY" in caught.value.message
    assert not (settings.data_dir / "encryption.key").exists()


async def test_production_with_an_encryption_key_builds_and_uses_it(settings: Settings) -> None:
    key = base64.b64encode(os.urandom(32)).decode()

    services = build_services(production(settings, encryption_key=key))
    try:
        assert services.vault.ring.source == "environment"
        assert services.vault.ring.older == ()
        assert services.brokers.vault is services.vault  # one vault per process
    finally:
        await services.close()
