"""The OpenAI Agents SDK (which speaks only the Responses API) runs an agent with a function tool through the
gateway, on a model passed through to OpenAI and on one translated to Anthropic's Messages API."""

from __future__ import annotations

import asyncio

import pytest
from agents import Agent, ModelSettings, OpenAIResponsesModel, RunConfig, Runner, function_tool
from openai import AsyncOpenAI

from tests.conftest import make_fake_provider, make_model, make_token

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}


@function_tool
def get_weather(location: str) -> str:
    """The weather in a city."""
    return f"22C in {location}"


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("streamed", [False, True])
def test_an_agent_calls_its_tool_and_answers_with_the_result(live_gateway, fakes: dict, kind: str,
                                                             streamed: bool) -> None:
    make_model(MODELS[kind], (make_fake_provider(kind, fakes[kind]), MODELS[kind]), max_output_tokens=1024)
    token = make_token()

    async def run() -> str:
        client = AsyncOpenAI(base_url=live_gateway.v1, api_key=token, max_retries=0)
        agent = Agent(name="Assistant", instructions="Be brief.", tools=[get_weather],
                      model=OpenAIResponsesModel(MODELS[kind], client), model_settings=ModelSettings(temperature=0))
        config = RunConfig(tracing_disabled=True)
        if streamed:
            result = Runner.run_streamed(agent, "please call get_weather", run_config=config)
            async for _ in result.stream_events():
                pass
        else:
            result = await Runner.run(agent, "please call get_weather", run_config=config)
        await client.close()
        return str(result.final_output)

    assert asyncio.run(run()) == "Tool said: 22C in Paris"
    sent = fakes[kind].requests
    assert len(sent) == 2  # the call, then the tool's result sent back
