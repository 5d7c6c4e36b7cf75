"""The admin of the model registry: entries with their deployments inline, prices and where they come from."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join

from gateway import validators
from gateway.models import Deployment, ModelEntry


class DeploymentInline(admin.TabularInline):
    model = Deployment
    extra = 1
    fields = ("provider", "upstream_model", "weight", "priority", "active")
    autocomplete_fields = ("provider",)


class PriceSourceFilter(admin.SimpleListFilter):
    """Models by where their prices come from (for their first deployment's upstream model)."""

    title = "prices"
    parameter_name = "prices"
    STATES = (("entry", "set here"), ("price_list", "from the price list"), ("mixed", "set here + price list"),
              ("unknown", "unknown"))

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> tuple[tuple[str, str], ...]:
        return self.STATES

    def queryset(self, request: HttpRequest, queryset: QuerySet[ModelEntry]) -> QuerySet[ModelEntry]:
        if not self.value():
            return queryset
        ids = [m.id for m in queryset  # (ModelEntryAdmin.get_queryset prefetches the deployments)
               if m.pricing().state(needs_output=not m.embeddings) == self.value()]
        return queryset.filter(id__in=ids)


class ModelEntryForm(forms.ModelForm):
    def clean_fallbacks(self) -> str:
        """Exact names of other existing models; stored one per line."""
        names = validators.split_names(self.cleaned_data.get("fallbacks", ""))
        known = set(ModelEntry.objects.exclude(name__contains="*").values_list("name", flat=True))
        problems = validators.fallback_problems(self.cleaned_data.get("name") or self.instance.name, names, known)
        if problems:
            raise forms.ValidationError(problems)
        return "\n".join(names)


@admin.register(ModelEntry)
class ModelEntryAdmin(admin.ModelAdmin):
    form = ModelEntryForm
    list_display = ("name", "is_pattern", "deployments_shown", "context_window", "input_price", "cached_input_price",
                    "output_price", "prices", "is_default", "active")
    list_filter = ("active", "is_default", PriceSourceFilter)
    search_fields = ("name", "description")
    readonly_fields = ("effective_prices",)
    inlines = (DeploymentInline,)
    # How a price that is not the entry's own is shown (USD per million tokens).
    PRICE_MARKS = {"price_list": "{} (list)", "input_price": "{} (= input)"}

    def get_queryset(self, request: HttpRequest) -> QuerySet[ModelEntry]:
        # The deployments and their accounts in two queries for the whole page (the list shows both).
        return super().get_queryset(request).prefetch_related(
            Prefetch("deployments", queryset=Deployment.objects.select_related("provider")))

    @admin.display(description="deployments")
    def deployments_shown(self, obj: ModelEntry) -> str:
        """Each deployment in the order they are tried: account → upstream model (inactive ones marked)."""
        rows = [(dep.provider.name, dep.upstream_model or "(requested name)", "" if dep.active else " (inactive)")
                for dep in sorted(obj.deployments.all(), key=lambda d: (d.priority, d.id))]
        return format_html_join("", "<div>{} → {}{}</div>", rows) if rows else "none"

    @admin.display(boolean=True, description="pattern")
    def is_pattern(self, obj: ModelEntry) -> bool:
        return obj.is_pattern

    def _price(self, obj: ModelEntry, index: int) -> str:
        pricing = obj.pricing()
        value, source = (pricing.input, pricing.cached_input, pricing.output)[index], pricing.sources[index]
        if source == "price_list_per_model":
            return "per model (list)"
        if value is None:
            return "-" if index == 2 and obj.embeddings else "unknown"
        return self.PRICE_MARKS.get(source, "{}").format(f"{value.normalize():f}")

    @admin.display(description="input $/M")
    def input_price(self, obj: ModelEntry) -> str:
        return self._price(obj, 0)

    @admin.display(description="cached input $/M")
    def cached_input_price(self, obj: ModelEntry) -> str:
        return self._price(obj, 1)

    @admin.display(description="output $/M")
    def output_price(self, obj: ModelEntry) -> str:
        return self._price(obj, 2)

    @admin.display(description="prices")
    def prices(self, obj: ModelEntry) -> str:
        return obj.pricing().summary(needs_output=not obj.embeddings)

    @admin.display(description="effective prices")
    def effective_prices(self, obj: ModelEntry) -> str:
        """Per active deployment: the prices its requests are charged at (USD per million tokens)."""
        if obj.pk is None:
            return "Shown once the model is saved."
        rows = [(f"{dep.provider.name}: {dep.upstream_model or '(requested name)'}", obj.pricing(dep).describe())
                for dep in obj.active_deployments()]
        return format_html_join("", "<div>{}: {}</div>", rows) if rows else "No active deployment."
