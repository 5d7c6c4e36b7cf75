"""The gateway's data: teams and tokens, provider accounts, the model registry, request logs."""

from __future__ import annotations

import re
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from gateway import crypto, provider_keys
from gateway.usage import prices
from gateway.validators import option_errors, split_names, validate_base_url, validate_model_name
from providers.base import Account
from providers.registry import UnknownKind, adapter_class, kind_choices, missing_options

BUDGET_PERIODS = [("total", "total (never resets)"), ("daily", "daily"), ("weekly", "weekly (from Monday)"),
                  ("monthly", "monthly")]
# Budgets are counted in 1e-8 USD integers; Redis's scripts compare them as doubles, exact below 2**53.
MAX_BUDGET = Decimal(10_000_000)
# The anonymous identity (GATEWAY_ANONYMOUS): one ApiToken row with crypto.ANONYMOUS_DIGEST for a digest.
# Requests without a token are logged, counted and reported as this row, under this name.
ANONYMOUS_DIGEST = crypto.ANONYMOUS_DIGEST
ANONYMOUS_NAME = "anonymous"


class Limited(models.Model):
    """The limits a team or a token can have (gateway/access/limits.py enforces them). Empty: no limit."""

    rpm = models.PositiveIntegerField(
        "requests per minute", null=True, blank=True,
        help_text="Requests per calendar minute. Empty: no limit; 0 refuses every request.",
    )
    tpm = models.PositiveIntegerField(
        "tokens per minute", null=True, blank=True,
        help_text="Prompt + completion tokens per calendar minute (reserved up front: prompt estimate + max "
                  "output tokens; settled to the real usage). Empty: no limit.",
    )
    parallel = models.PositiveIntegerField(
        "parallel requests", null=True, blank=True, help_text="Requests in flight at once. Empty: no limit.",
    )
    budget = models.DecimalField(
        "budget (USD)", max_digits=12, decimal_places=4, null=True, blank=True,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(MAX_BUDGET)],
        help_text="USD per budget period, as the request log counts cost. Empty: no limit.",
    )
    budget_period = models.CharField(
        max_length=10, choices=BUDGET_PERIODS, default="total",
        help_text="When the budget starts again: at midnight, on Monday, on the 1st (TIME_ZONE); total: never.",
    )

    LIMIT_FIELDS = ("rpm", "tpm", "parallel", "budget", "budget_period")

    class Meta:
        abstract = True

    def has_limits(self) -> bool:
        return any(getattr(self, name) is not None for name in ("rpm", "tpm", "parallel", "budget"))

    def limits_summary(self) -> str:
        """e.g. "10 rpm, 20000 tpm, 2 parallel, $5 monthly"; "-" without limits."""
        parts = [f"{value} {unit}" for value, unit in ((self.rpm, "rpm"), (self.tpm, "tpm"),
                                                       (self.parallel, "parallel")) if value is not None]
        if self.budget is not None:
            parts.append(f"${format(Decimal(self.budget).normalize(), 'f')} {self.budget_period}")
        return ", ".join(parts) or "-"


class Team(Limited):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiToken(Limited):
    """A client credential. Only the SHA-256 digest of the secret is kept; the raw value is shown once."""

    name = models.CharField(max_length=100)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="tokens")
    prefix = models.CharField(max_length=16, editable=False, help_text="The token's first characters, for recognising it.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    active = models.BooleanField(default=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    allowed_models = models.TextField(
        blank=True,
        help_text="Model names or patterns (gpt-*, @cf/*), one per line or comma-separated. Empty: every model.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Limits per client address (the connection's, or the client's from a trusted proxy), within the
    # token's own: each address counts on its own. Set on the anonymous identity (config `anonymous:`).
    rpm_per_ip = models.PositiveIntegerField(
        "requests per minute per client address", null=True, blank=True,
        help_text="Each client address (an IPv6 one by its /64 network) on its own. Empty: no limit.",
    )
    tpm_per_ip = models.PositiveIntegerField(
        "tokens per minute per client address", null=True, blank=True,
        help_text="As tokens per minute, for each client address on its own. Empty: no limit.",
    )
    parallel_per_ip = models.PositiveIntegerField(
        "parallel requests per client address", null=True, blank=True,
        help_text="Requests in flight at once from one client address. Empty: no limit.",
    )

    PER_ADDRESS_FIELDS = ("rpm_per_ip", "tpm_per_ip", "parallel_per_ip")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} (no token)" if self.is_anonymous else f"{self.name} ({self.prefix}…)"

    @property
    def is_anonymous(self) -> bool:
        """The anonymous identity's row (requests without a token, when GATEWAY_ANONYMOUS is on)."""
        return self.digest == ANONYMOUS_DIGEST

    @classmethod
    def anonymous(cls) -> ApiToken:
        """The anonymous identity's row; created the first time it is needed, with no limits and every model."""
        return cls.objects.get_or_create(digest=ANONYMOUS_DIGEST, defaults={"name": ANONYMOUS_NAME})[0]

    def clean(self) -> None:
        super().clean()
        if self.is_anonymous and self.name != ANONYMOUS_NAME:
            raise ValidationError({"name": f"The anonymous identity is always named '{ANONYMOUS_NAME}'."})
        if not self.is_anonymous and self.name.strip().casefold() == ANONYMOUS_NAME:
            raise ValidationError({"name": f"'{ANONYMOUS_NAME}' is the anonymous identity's name (reports show "
                                           "requests without a token under it): choose another."})

    def limits_summary(self) -> str:
        parts = [f"{value} {unit} per client address" for value, unit in
                 ((self.rpm_per_ip, "rpm"), (self.tpm_per_ip, "tpm"), (self.parallel_per_ip, "parallel"))
                 if value is not None]
        summary = super().limits_summary()
        return ", ".join([summary, *parts] if summary != "-" else parts) or "-"

    def set_new_secret(self) -> str:
        """Give the token a fresh random secret; returns the raw value (never stored)."""
        raw = crypto.new_token()
        self.digest = crypto.token_digest(raw)
        self.prefix = raw[: crypto.PREFIX_LENGTH]
        return raw

    def allowed_model_list(self) -> list[str]:
        return [item.strip() for item in re.split(r"[,\n]", self.allowed_models) if item.strip()]


# Seconds: at least 10 ms, at most a day.
TIMEOUT_VALIDATORS = [MinValueValidator(0.01), MaxValueValidator(86400.0)]


class ProviderAccount(models.Model):
    """One set of credentials at one upstream provider."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=40, choices=kind_choices)
    base_url = models.CharField(
        blank=True, max_length=500, validators=[validate_base_url], help_text="Empty: the kind's default URL."
    )
    api_key_encrypted = models.TextField(blank=True, editable=False)
    options = models.JSONField(default=dict, blank=True,
                               help_text="Kind-specific settings: the options each kind declares (providers/), and any "
                                         "other key, passed to the adapter as it is.")
    # A hung upstream holds a client no longer than these (then 504, or an error event mid-stream).
    connect_timeout = models.FloatField(default=10.0, validators=TIMEOUT_VALIDATORS,
                                        help_text="Seconds to open a connection.")
    first_byte_timeout = models.FloatField(
        default=120.0, validators=TIMEOUT_VALIDATORS,
        help_text="Seconds from sending a request (connecting included) to the answer's first bytes (a "
                  "non-streamed answer's come when it is complete: raise it for slow reasoning models). "
                  "Then the next deployment is tried.")
    read_timeout = models.FloatField(
        default=300.0, validators=TIMEOUT_VALIDATORS, verbose_name="between-chunks timeout",
        help_text="Seconds to wait for each next piece of an answer once it has started (a reasoning model "
                  "may pause mid-stream).")
    # Cooldowns of this account's deployments; empty: the GATEWAY_COOLDOWN_* setting.
    cooldown_failures = models.PositiveIntegerField(
        null=True, blank=True, help_text="Failures within the window that put a deployment of this account in "
                                         "cooldown (0: never). Empty: GATEWAY_COOLDOWN_FAILURES.")
    cooldown_window_seconds = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.001)],
        help_text="Seconds in which those failures count. Empty: GATEWAY_COOLDOWN_WINDOW_SECONDS.")
    cooldown_seconds = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="Seconds a deployment in cooldown is tried only when nothing else is left. "
                  "Empty: GATEWAY_COOLDOWN_SECONDS.")
    active = models.BooleanField(default=True)
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.CharField(max_length=500, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def clean(self) -> None:
        """A kind without a default URL (any OpenAI-compatible server) cannot be called without one; nor
        without an option its kind declares required (the error's ``params["option"]`` names it)."""
        errors: dict[str, list[ValidationError]] = {}
        if not self.base_url and self.needs_base_url:
            errors["base_url"] = [ValidationError(
                "This kind has no default URL: enter the server's base URL, the part before /chat/completions "
                "(e.g. http://localhost:11434/v1).")]
        if found := option_errors(self.kind, self.options):
            errors["options"] = found
        if errors:
            raise ValidationError(errors)

    @property
    def needs_base_url(self) -> bool:
        try:
            return not adapter_class(self.kind).default_base_url
        except UnknownKind:
            return False

    @property
    def has_api_key(self) -> bool:
        """A key is stored (whether or not it can be decrypted: see ``key_status``)."""
        return bool(self.api_key_encrypted)

    @property
    def key_status(self) -> str:
        """"ok" (a key is stored and decrypts), "missing" (none stored) or "undecryptable" (stored, but
        none of GATEWAY_ENCRYPTION_KEYS opens it: requests to the account fail with a 503)."""
        if not self.api_key_encrypted:
            return provider_keys.MISSING
        return provider_keys.OK if self._decrypted_key() is not None else provider_keys.UNDECRYPTABLE

    @property
    def is_configured(self) -> bool:
        """Has what its kind needs to be called: a base URL, its required options, and a usable key
        unless the kind works without one."""
        try:
            cls = adapter_class(self.kind)
        except UnknownKind:
            return False
        if not self.base_url and not cls.default_base_url:
            return False
        if missing_options(self.kind, self.options if isinstance(self.options, dict) else {}):
            return False
        status = self.key_status
        return status == provider_keys.OK or (status == provider_keys.MISSING and not cls.requires_api_key)

    def set_api_key(self, raw: str) -> None:
        self.api_key_encrypted = crypto.encrypt(raw) if raw else ""

    def _decrypted_key(self) -> str | None:
        key = crypto.decrypt_or_none(self.api_key_encrypted)
        provider_keys.note_decryption(self.pk, self.name, key is not None)
        return key

    def get_api_key(self) -> str:
        """The decrypted key; "" when none is stored or it cannot be decrypted."""
        return (self._decrypted_key() or "") if self.api_key_encrypted else ""

    def as_account(self) -> Account:
        """What an adapter gets: the settings of this account, with the key decrypted (and its state)."""
        key = self._decrypted_key() if self.api_key_encrypted else ""
        status = (provider_keys.MISSING if not self.api_key_encrypted
                  else provider_keys.OK if key is not None else provider_keys.UNDECRYPTABLE)
        return provider_keys.StoredAccount(self.name, self.kind, self.base_url, key or "", dict(self.options or {}),
                                           self.connect_timeout, self.read_timeout, self.first_byte_timeout,
                                           key_status=status)


class ModelEntry(models.Model):
    """A public model name, or a pattern such as ``gpt-*``, that clients may ask for."""

    name = models.CharField(
        max_length=200, unique=True, validators=[validate_model_name],
        help_text="Exact name (gpt-4o-mini) or a pattern where * matches anything (gpt-*, @cf/*, *-mini).",
    )
    description = models.CharField(max_length=300, blank=True)
    context_window = models.PositiveIntegerField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Default max_tokens for providers that require one."
    )
    input_price_per_million = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True,
        help_text="USD per million input tokens. Empty: the price list's for the upstream model; 0: free.",
    )
    cached_input_price_per_million = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True,
        help_text="USD per million input tokens read from the provider's prompt cache. Empty: the price "
                  "list's, else the input price.",
    )
    output_price_per_million = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True,
        help_text="USD per million output tokens. Empty: the price list's for the upstream model; 0: free.",
    )
    is_default = models.BooleanField(default=False, help_text="Used when a request names no model.")
    streaming = models.BooleanField(default=True, help_text="Capability shown in /v1/model-options.")
    tools = models.BooleanField(default=True, help_text="Capability: function/tool calling.")
    vision = models.BooleanField(default=False, help_text="Capability: image input.")
    embeddings = models.BooleanField(default=False, help_text="Capability: an embedding model.")
    fallbacks = models.TextField(
        blank=True, help_text="Other models (exact names) to try, in order, when every deployment of this one "
                              "fails; one per line or comma-separated.",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    CAPABILITIES = ("streaming", "tools", "vision", "embeddings")

    class Meta:
        ordering = ["name"]
        verbose_name = "model"
        verbose_name_plural = "models"

    def __str__(self) -> str:
        return self.name

    @property
    def is_pattern(self) -> bool:
        return "*" in self.name

    def pricing(self, deployment: Deployment | None = None) -> prices.Pricing:
        """The prices a request served by ``deployment`` (default: the first one tried) is charged at, and
        where each comes from, as the registry's ``Entry.pricing``."""
        if deployment is None:
            deployment = next(iter(self.active_deployments()), None)
        upstream = deployment.upstream_model if deployment is not None else ""
        return prices.pricing(self.input_price_per_million, self.cached_input_price_per_million,
                              self.output_price_per_million, upstream or (None if self.is_pattern else self.name))

    def fallback_names(self) -> list[str]:
        return split_names(self.fallbacks)

    def active_deployments(self) -> list[Deployment]:
        """In the order they are tried (uses a prefetched ``deployments`` when there is one)."""
        return sorted((d for d in self.deployments.all() if d.active), key=lambda d: (d.priority, d.id))


class Deployment(models.Model):
    """Where a registry entry is served: a provider account and the upstream's model id."""

    model = models.ForeignKey(ModelEntry, on_delete=models.CASCADE, related_name="deployments")
    provider = models.ForeignKey(ProviderAccount, on_delete=models.CASCADE, related_name="deployments")
    upstream_model = models.CharField(
        max_length=200, blank=True, help_text="The provider's model id. Empty: the requested name is passed through."
    )
    weight = models.PositiveIntegerField(default=1, help_text="Share of traffic among deployments of equal priority.")
    priority = models.IntegerField(default=0, help_text="Lower is tried first; higher ones are fallbacks.")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["priority", "id"]

    def __str__(self) -> str:
        return f"{self.provider.name}:{self.upstream_model or '(requested name)'}"


class RequestLog(models.Model):
    """One row per /v1 request, written in batches off the response path."""

    created_at = models.DateTimeField(db_index=True)
    request_id = models.CharField(max_length=64, db_index=True)
    # No single-column indexes on token, team and requested_model: the (column, created_at) indexes
    # below start with them, and serve the admin's filters in its default order (newest first).
    token = models.ForeignKey(ApiToken, null=True, blank=True, on_delete=models.SET_NULL, db_constraint=False,
                              db_index=False)
    token_name = models.CharField(max_length=100, blank=True)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, db_constraint=False,
                             db_index=False)
    session_id = models.CharField(max_length=128, blank=True, db_index=True)
    endpoint = models.CharField(max_length=64)
    requested_model = models.CharField(max_length=200, blank=True)
    resolved_model = models.CharField(max_length=200, blank=True)
    provider_kind = models.CharField(max_length=40, blank=True)
    provider_account = models.CharField(max_length=100, blank=True)
    status_code = models.PositiveSmallIntegerField()
    error_type = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    usage_estimated = models.BooleanField(default=False)
    cost = models.DecimalField(
        max_digits=14, decimal_places=8, null=True, blank=True, default=Decimal("0"),
        help_text="USD. Empty: unknown (a token price neither the model entry nor the price list has).",
    )
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time to first token (streams).")
    stream = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=1)
    request_body = models.TextField(blank=True)
    response_body = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["token", "created_at"]),
            models.Index(fields=["team", "created_at"], name="reqlog_team_created"),
            models.Index(fields=["requested_model", "created_at"], name="reqlog_model_created"),
            models.Index(fields=["provider_account", "created_at"], name="reqlog_provider_created"),
            models.Index(fields=["status_code", "created_at"], name="reqlog_status_created"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.endpoint} {self.status_code}"


class UsageDaily(models.Model):
    """Requests, tokens and cost per day, team, token, model and provider account: what reports read
    (never the raw log). Kept by the request-log writer in the same transaction as the rows it sums;
    ``manage.py gateway_usage rebuild`` recomputes it from the raw log."""

    day = models.DateField()  # in settings.TIME_ZONE
    # Plain ids (0: none) rather than foreign keys: one row per key even without a team, and it stays
    # when a token or team is deleted (the names are kept beside them).
    team_id = models.PositiveBigIntegerField(default=0)
    team_name = models.CharField(max_length=100, blank=True)
    token_id = models.PositiveBigIntegerField(default=0)
    token_name = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=200, blank=True, help_text="The model name the client asked for.")
    provider = models.CharField(max_length=100, blank=True, help_text="The provider account that answered.")
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=18, decimal_places=8, default=Decimal("0"), help_text="USD, known costs only.")
    unknown_cost_requests = models.PositiveIntegerField(default=0, help_text="Requests whose cost is unknown.")

    class Meta:
        verbose_name = "daily usage"
        verbose_name_plural = "daily usage"
        constraints = [models.UniqueConstraint(fields=["day", "team_id", "token_id", "model", "provider"],
                                               name="usage_daily_unique")]
        indexes = [models.Index(fields=["team_id", "day"]), models.Index(fields=["token_id", "day"])]

    def __str__(self) -> str:
        return f"{self.day} {self.token_name or '-'} {self.model} {self.provider}"


class LimitCounter(models.Model):
    """One limit window's count (requests, tokens or 1e-8 USD), for the database limit store; also the lock
    row of a parallel limit. Rows whose ``expires`` has passed are deleted."""

    key = models.CharField(max_length=200, unique=True)
    value = models.BigIntegerField(default=0)
    expires = models.FloatField(null=True, db_index=True, help_text="Unix time it may be deleted after; empty: never.")

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class LimitSlot(models.Model):
    """One request in flight under a parallel limit (database limit store); ``expires`` is renewed while
    the request runs, so a crashed worker's slots free themselves."""

    key = models.CharField(max_length=200, db_index=True)
    holder = models.CharField(max_length=32, db_index=True)
    expires = models.FloatField()

    def __str__(self) -> str:
        return f"{self.key} {self.holder}"


class StoredResponse(models.Model):
    """A Responses API answer kept for ``previous_response_id`` and ``GET /v1/responses/{id}`` (``store``).

    ``input_items`` is everything the model read for it (the earlier turns of its conversation, then
    its own input), ``response`` the response object as the client got it; both are JSON text, written
    once and sent back as they are. Only the token that created it can read or delete it.
    """

    id = models.CharField(primary_key=True, max_length=100)
    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, db_index=False)
    created_at = models.DateTimeField(db_index=True)
    model = models.CharField(max_length=200, blank=True)
    previous_response_id = models.CharField(max_length=100, blank=True)
    response = models.TextField()
    input_items = models.TextField()

    class Meta:
        indexes = [models.Index(fields=["token", "created_at"], name="storedresp_token_created")]

    def __str__(self) -> str:
        return self.id
