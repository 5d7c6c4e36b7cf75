"""OpenAI's Responses API (``POST /v1/responses``) on every provider kind.

An adapter whose provider speaks the Responses API itself says so with ``serves_responses()``
(OpenAI; an OpenAI-compatible account with the option ``responses: true``) and gets the request
as it came. Every other adapter serves it through its chat methods: the request becomes a chat
completion body (``request.chat_body``), the chat answer a ``response`` object
(``response.from_chat``) and the chat stream Responses events (``stream.ResponsesStream``).

``endpoint`` chooses between the two for each request.
"""
