"""Anthropic's Messages API: request.py (OpenAI request -> the upstream's), response.py (answers and streams -> OpenAI's),
adapter.py (the adapter: URLs, headers, errors). The registry imports the adapter from adapter.py.
"""
