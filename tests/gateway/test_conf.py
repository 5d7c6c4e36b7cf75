import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from gateway.conf import gateway_settings


def test_an_override_changes_only_the_names_it_gives():
    with override_settings(GATEWAY={"LOG_BATCH_SIZE": 5}):
        assert gateway_settings.LOG_BATCH_SIZE == 5
        assert gateway_settings.CACHE_SECONDS == 5.0
    assert gateway_settings.LOG_BATCH_SIZE == 200


def test_an_unknown_name_is_an_error_not_a_default():
    with pytest.raises(AttributeError):
        gateway_settings.LOG_BATCH_SIZ  # noqa: B018
    with override_settings(GATEWAY={"LOG_BATCH_SIZ": 5}), pytest.raises(ImproperlyConfigured, match="LOG_BATCH_SIZ"):
        gateway_settings.CACHE_SECONDS  # noqa: B018


def test_encryption_keys_default_to_the_secret_key():
    with override_settings(GATEWAY={}, SECRET_KEY="s3cret"):
        assert gateway_settings.ENCRYPTION_KEYS == ["s3cret"]
