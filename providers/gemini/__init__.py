"""Google Gemini: request translation, answer and stream translation, and the adapter."""

from providers.gemini.adapter import GeminiAdapter

__all__ = ["GeminiAdapter"]
