"""Validation against OpenAI's official OpenAPI description (vendored in tests/data)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import orjson
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).parent / "data" / "openapi.normalized.json"
SPEC_URI = "urn:openai-openapi"


@functools.cache
def _registry() -> tuple[Registry, dict[str, Any]]:
    spec = orjson.loads(SPEC_PATH.read_bytes())
    resource = Resource.from_contents(spec, default_specification=DRAFT202012)
    return Registry().with_resource(SPEC_URI, resource), spec["components"]["schemas"]


@functools.cache
def validator(component: str) -> jsonschema.Draft202012Validator:
    registry, schemas = _registry()
    if component not in schemas:
        raise KeyError(f"OpenAI's spec has no component {component!r}")
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": f"{SPEC_URI}#/components/schemas/{component}"}
    return jsonschema.Draft202012Validator(root, registry=registry)


def _explain(error: jsonschema.ValidationError, depth: int = 0) -> list[str]:
    where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    lines = [f"{'  ' * depth}- at {where}: {error.message[:300]}"]
    if error.context and depth < 2:
        for sub in sorted(error.context, key=jsonschema.exceptions.relevance)[:3]:
            lines += _explain(sub, depth + 1)
    return lines


def assert_valid(component: str, document: Any) -> None:
    """Fail with readable reasons unless `document` matches `#/components/schemas/<component>`."""
    errors = sorted(validator(component).iter_errors(document), key=jsonschema.exceptions.relevance)
    if errors:
        reasons = [line for error in errors[:5] for line in _explain(error)]
        raise AssertionError(f"not a valid {component}:\n" + "\n".join(reasons) + f"\ndocument: {document!r}"[:2000])


def sse_events(text: str) -> tuple[list[dict[str, Any]], bool]:
    """The JSON events of an SSE transcript, and whether it ended with `data: [DONE]`."""
    events: list[dict[str, Any]] = []
    done = False
    for line in text.splitlines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        assert not done, "data after [DONE]"
        if data == "[DONE]":
            done = True
        else:
            events.append(orjson.loads(data))
    return events, done


def assert_valid_sse(component: str, text: str) -> list[dict[str, Any]]:
    """Validate every event of an SSE transcript (error events as ErrorResponse); [DONE] is required."""
    events, done = sse_events(text)
    assert done, f"the stream did not end with data: [DONE]:\n{text[-500:]}"
    for event in events:
        assert_valid("ErrorResponse" if "error" in event else component, event)
    return events


def assert_valid_completion_sse(text: str) -> list[dict[str, Any]]:
    """Legacy /completions streams: the spec has no chunk schema, and OpenAI itself sends
    ``finish_reason: null`` before the last chunk, so only that is relaxed from CreateCompletionResponse."""
    events, done = sse_events(text)
    assert done, f"the stream did not end with data: [DONE]:\n{text[-500:]}"
    for event in events:
        if "error" in event:
            assert_valid("ErrorResponse", event)
            continue
        relaxed = {**event, "choices": [{**c, "finish_reason": c.get("finish_reason") or "stop"}
                                        for c in event.get("choices", [])]}
        assert_valid("CreateCompletionResponse", relaxed)
    return events
