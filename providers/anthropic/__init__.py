"""Anthropic's Messages API: request translation, answer and stream translation, and the adapter."""

from providers.anthropic.adapter import AnthropicAdapter

__all__ = ["AnthropicAdapter"]
