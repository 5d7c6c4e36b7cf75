"""Whether a provider account's stored API key can be used, and what to say when it cannot.

Keys are encrypted at rest with ``GATEWAY_ENCRYPTION_KEYS`` (``gateway/crypto.py``). A stored key
that none of them opens — the encryption keys changed, or were derived from a ``SECRET_KEY`` that
changed — is "undecryptable": it is logged (once per process and account, never the ciphertext),
shown in the admin and on ``/health``, and requests to the account fail with a 503 that tells the
administrator what to do, instead of passing for an account that has no key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from providers.base import Account, ProviderError

logger = logging.getLogger(__name__)

OK, MISSING, UNDECRYPTABLE = "ok", "missing", "undecryptable"

_reported: set[object] = set()  # accounts (ids) whose undecryptable key this process has logged


@dataclass(frozen=True)
class StoredAccount(Account):
    """An ``Account`` read from the database, with the state of its stored key (``api_key`` is ""
    unless it is OK)."""

    key_status: str = OK


def key_status(account: Account) -> str:
    return getattr(account, "key_status", OK if account.api_key else MISSING)


def note_decryption(account_id: int | None, name: str, opened: bool) -> None:
    """Log, once per process and account, that its stored key cannot be decrypted."""
    which = account_id if account_id is not None else name
    if opened:
        _reported.discard(which)
    elif which not in _reported:
        _reported.add(which)
        logger.error("provider account %r: its stored API key cannot be decrypted with any of "
                     "GATEWAY_ENCRYPTION_KEYS (were they changed, or SECRET_KEY that they default to?); "
                     "requests to it fail until an administrator adds the old key to GATEWAY_ENCRYPTION_KEYS "
                     "or enters the API key again in the admin", name)


def missing_key_error(account: Account, key_required: bool) -> ProviderError | None:
    """The 503 for an account that cannot be called for want of a usable key; None when it can."""
    if key_status(account) == UNDECRYPTABLE:
        return ProviderError(503, f"The provider account '{account.name}' has a stored API key that cannot be "
                             "decrypted; an administrator must set GATEWAY_ENCRYPTION_KEYS to include the key it "
                             "was encrypted with, or enter the API key again.", "upstream_error",
                             "provider_key_undecryptable")
    if key_required and not account.api_key:
        return ProviderError(503, f"The provider account '{account.name}' has no API key configured; "
                             "an administrator must add one.", "upstream_error", "provider_not_configured")
    return None
