from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import post_delete, post_save


def data_changed(**kwargs: object) -> None:
    """A token, provider or registry row changed: drop cached copies once the change is committed."""
    from gateway import invalidation

    transaction.on_commit(invalidation.changed)


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "AI gateway"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from gateway.models import ApiToken, Deployment, ModelEntry, ProviderAccount, Team

        for model in (Team, ApiToken, ProviderAccount, ModelEntry, Deployment):
            post_save.connect(data_changed, sender=model, dispatch_uid=f"gateway-cache-{model.__name__}-save")
            post_delete.connect(data_changed, sender=model, dispatch_uid=f"gateway-cache-{model.__name__}-delete")
