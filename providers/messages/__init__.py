"""Anthropic's Messages API (``/v1/messages``) for every provider kind: ``dispatch`` picks the
passthrough (``passthrough``) or the translation through chat (``request``, ``response``)."""
