"""Cloudflare Workers AI: request translation, answer and stream translation, and the adapter."""

from providers.cloudflare.adapter import CloudflareAdapter

__all__ = ["CloudflareAdapter"]
