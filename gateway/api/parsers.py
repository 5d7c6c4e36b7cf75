"""The one request parser of the DRF views (``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``).

JSON as the hot path parses it (``gateway.jsonbody``: orjson and the ``MAX_JSON_DEPTH`` limit),
so both sides accept and refuse the same bodies with the same errors. DRF's own ``JSONParser``
would recurse into a deeply nested body until ``RecursionError`` (a 500).

Deliberately not a subclass of DRF's ``JSONParser``: DRF hands its subclasses ``request.body``,
which applies Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB, an HTML 400). The API's body limit
is ``MAX_BODY_BYTES``, already enforced by the ASGI app (``gateway/edge/app.py``) before Django
reads the body, so this parser reads the request stream itself.
"""

from __future__ import annotations

import codecs
from typing import IO, Any

from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer

from gateway import jsonbody

_UTF8 = codecs.lookup("utf-8").name


class JSONParser(BaseParser):
    media_type = "application/json"
    renderer_class = JSONRenderer

    def parse(self, stream: IO[bytes], media_type: str | None = None,
              parser_context: dict[str, Any] | None = None) -> Any:
        body = stream.read()
        encoding = (parser_context or {}).get("encoding") or _UTF8
        try:
            if codecs.lookup(encoding).name != _UTF8:  # a charset the client named in Content-Type
                body = body.decode(encoding).encode()
        except (LookupError, UnicodeError):
            raise jsonbody.not_json() from None
        return jsonbody.parse(body)
