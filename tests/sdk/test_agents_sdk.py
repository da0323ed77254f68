"""The OpenAI Agents SDK (`openai-agents`) runs an agent with two function tools through the
gateway, unchanged: with its default Responses model (streamed and not) and with its Chat
Completions model, on simulated providers of two dialects (OpenAI and Anthropic)."""

import asyncio

import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

from conftest import KEY

# Traces would go to OpenAI's servers: tests never leave the machine.
set_tracing_disabled(True)

MODELS = ["gpt-4o", "claude-sonnet"]
PROMPT = "Use get_weather and get_time for the city, then answer."


def make_agent(gateway_url, model, kind, calls):
    @function_tool
    def get_weather(city: str, unit: str = "c") -> str:
        """Current weather in a city.

        Args:
            city: The city.
            unit: c or f.
        """
        calls.append(("get_weather", city))
        return f"sunny and 21 degrees in {city}"

    @function_tool
    def get_time(city: str) -> str:
        """Local time in a city.

        Args:
            city: The city.
        """
        calls.append(("get_time", city))
        return f"it is noon in {city}"

    client = AsyncOpenAI(base_url=f"{gateway_url}/v1", api_key=KEY, max_retries=0)
    model_class = OpenAIResponsesModel if kind == "responses" else OpenAIChatCompletionsModel
    return Agent(
        name="assistant",
        instructions="You answer questions about cities with your tools.",
        tools=[get_weather, get_time],
        model=model_class(model=model, openai_client=client),
        model_settings=ModelSettings(parallel_tool_calls=True, include_usage=True),
    )


def check(result, calls):
    # Both tools ran, with schema-valid arguments (the SDK validated them against the schema
    # before calling, so a bad argument would have failed the tool, not reached it).
    assert sorted(name for name, _ in calls) == ["get_time", "get_weather"]
    assert all(isinstance(city, str) and city for _, city in calls)
    # The final answer is text that used the tool results.
    assert isinstance(result.final_output, str)
    assert "sunny and 21 degrees" in result.final_output
    assert "noon" in result.final_output
    usage = result.context_wrapper.usage
    assert usage.requests == 2
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


@pytest.mark.parametrize("kind", ["responses", "chat"])
@pytest.mark.parametrize("model", MODELS)
def test_agent_with_two_tools(gateway_url, model, kind):
    calls = []
    agent = make_agent(gateway_url, model, kind, calls)
    result = Runner.run_sync(agent, PROMPT)
    check(result, calls)


@pytest.mark.parametrize("kind", ["responses", "chat"])
@pytest.mark.parametrize("model", MODELS)
def test_agent_with_two_tools_streamed(gateway_url, model, kind):
    calls = []
    agent = make_agent(gateway_url, model, kind, calls)

    async def run():
        result = Runner.run_streamed(agent, PROMPT)
        kinds = []
        async for event in result.stream_events():
            if event.type == "raw_response_event":
                kinds.append(event.data.type)
        return result, kinds

    result, kinds = asyncio.run(run())
    check(result, calls)
    # Text arrived as deltas, and the tool calls' arguments too.
    assert "response.output_text.delta" in kinds
    assert "response.function_call_arguments.delta" in kinds
    assert kinds.count("response.completed") == 2


@pytest.mark.parametrize("model", MODELS)
def test_agent_continues_from_stored_responses(gateway_url, model):
    """With response chaining the SDK sends only new items plus `previous_response_id`; the
    gateway's stored conversation supplies the rest."""
    calls = []
    agent = make_agent(gateway_url, model, "responses", calls)
    first = Runner.run_sync(agent, PROMPT, auto_previous_response_id=True)
    check(first, calls)
    assert first.last_response_id.startswith("resp_")
    follow_up = "Thanks. Say that again briefly."
    chained = Runner.run_sync(agent, follow_up, previous_response_id=first.last_response_id)
    alone = Runner.run_sync(agent, follow_up)
    assert isinstance(chained.final_output, str) and chained.final_output
    # The chained call's prompt held the whole earlier conversation, the standalone one did not.
    assert chained.context_wrapper.usage.input_tokens > alone.context_wrapper.usage.input_tokens + 50
