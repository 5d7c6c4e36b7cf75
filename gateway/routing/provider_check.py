"""The admin's "check connection": one cheap authenticated call to a provider account, recorded."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.utils import timezone

from gateway import provider_keys
from gateway.inference import transport
from gateway.inference.transport import Timeouts, UpstreamUnavailable
from gateway.models import ProviderAccount
from providers.base import ProviderError
from providers.registry import UnknownKind, adapter_for


async def _probe(account: ProviderAccount) -> tuple[bool, str]:
    adapter = adapter_for(account.as_account())
    request = adapter.models_request()
    if request is None:
        return False, f"{adapter.label} has no cheap call to check with."
    try:
        async with transport.one_off() as upstream:
            timeouts = Timeouts(account.connect_timeout, min(account.first_byte_timeout, 30.0),
                                min(account.read_timeout, 30.0))
            response = await upstream.send(request, timeouts)
            body = await response.read()
    except UpstreamUnavailable as exc:
        return False, str(exc)
    if response.status < 400:
        return True, f"OK (HTTP {response.status})."
    error = adapter.error(response.status, body)
    return False, f"HTTP {response.status}: {error.message}"


def check_connection(account: ProviderAccount) -> tuple[bool, str]:
    """Call the provider once (a models list where it has one); stamp last success or last error."""
    try:
        if account.key_status == provider_keys.UNDECRYPTABLE:
            raise provider_keys.missing_key_error(account.as_account(), True)  # not sent keyless
        ok, message = async_to_sync(_probe)(account)
    except UnknownKind as exc:
        ok, message = False, str(exc)
    except ProviderError as exc:  # e.g. an option the request needs is missing
        ok, message = False, exc.message
    now = timezone.now()
    if ok:
        ProviderAccount.objects.filter(pk=account.pk).update(last_success_at=now)
    else:
        ProviderAccount.objects.filter(pk=account.pk).update(last_error_at=now, last_error=message[:500])
    return ok, message
