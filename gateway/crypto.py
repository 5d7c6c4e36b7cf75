"""Secrets at rest: API tokens are kept as SHA-256 digests, provider keys encrypted with Fernet."""

from __future__ import annotations

import base64
import hashlib
import secrets
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from gateway.conf import gateway_settings

TOKEN_PREFIX = "sk-gw-"
PREFIX_LENGTH = 12  # "sk-gw-" + 6 characters of the secret: enough to recognise, useless to guess


def new_token() -> str:
    """A fresh client token: 256 random bits, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


# The anonymous identity's row (GATEWAY_ANONYMOUS) has this word in place of a digest: a digest is 64
# hex characters, so no token anyone presents can ever match it.
ANONYMOUS_DIGEST = "anonymous"


def _fernet_key(material: str) -> bytes:
    """Use a real Fernet key as is; stretch any other passphrase to one."""
    try:
        if len(base64.urlsafe_b64decode(material.encode())) == 32:
            return material.encode()
    except (ValueError, TypeError):
        pass
    digest = hashlib.sha256(b"gateway-provider-keys:" + material.encode()).digest()
    return base64.urlsafe_b64encode(digest)


@lru_cache(maxsize=4)
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(k)) for k in keys])


def cipher() -> MultiFernet:
    return _cipher(tuple(gateway_settings.ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return cipher().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt a stored provider key; a key that no configured key opens reads as empty."""
    return decrypt_or_none(token) or ""


def decrypt_or_none(token: str) -> str | None:
    """Decrypt a stored provider key; None when no configured key opens it."""
    try:
        return cipher().decrypt(token.encode()).decode()
    except InvalidToken:
        return None


def is_current(token: str) -> bool:
    """Encrypted under the first (current) key, as ``rotate`` would leave it."""
    first = Fernet(_fernet_key(gateway_settings.ENCRYPTION_KEYS[0]))
    try:
        first.decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def rotate(token: str) -> str:
    """The same plaintext encrypted under the first key (raises ``InvalidToken`` if no key opens it)."""
    return cipher().rotate(token.encode()).decode()
