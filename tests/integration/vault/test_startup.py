"""The app's startup and the vault: production refuses to run without a key."""

from __future__ import annotations

import base64
import os

import pytest

from pinelab.api.app import build_context
from pinelab.config import Settings
from pinelab.vault import KeyConfigurationError


def production(settings: Settings, **values: object) -> Settings:
    return settings.model_copy(update={"env": "production", **values})


def test_production_without_an_encryption_key_refuses_to_build_the_app(settings: Settings) -> None:
    with pytest.raises(KeyConfigurationError) as caught:
        build_context(production(settings))

    assert "PINELAB_ENCRYPTION_KEY" in caught.value.message
    assert not (settings.data_dir / "encryption.key").exists()


async def test_production_with_an_encryption_key_builds_and_uses_it(settings: Settings) -> None:
    key = base64.b64encode(os.urandom(32)).decode()

    context = build_context(production(settings, encryption_key=key))
    try:
        assert context.brokers.vault.ring.source == "environment"
        assert context.brokers.vault.ring.older == ()
    finally:
        await context.brokers.close()
        await context.db.dispose()
