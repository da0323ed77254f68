"""The official `anthropic` Python SDK drives `/v1/messages` unchanged, against deployments on
simulated OpenAI, Bedrock, Gemini and Anthropic providers."""

import json

import anthropic
import pytest

from conftest import KEY

MODELS = ["gpt-4o", "claude-on-bedrock", "gemini-flash", "claude-sonnet"]

TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather in a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city", "unit"],
        },
    },
    {
        "name": "get_time",
        "description": "Local time in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
]


@pytest.fixture()
def claude(gateway_url):
    return anthropic.Anthropic(base_url=gateway_url, api_key=KEY, max_retries=0)


@pytest.mark.parametrize("model", MODELS)
def test_text(claude, model):
    message = claude.messages.create(
        model=model,
        max_tokens=256,
        system="You are terse.",
        messages=[{"role": "user", "content": "Tell me about glaciers"}],
    )
    assert message.type == "message" and message.role == "assistant"
    assert "glaciers" in message.content[0].text
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_stream(claude, model):
    with claude.messages.stream(
        model=model, max_tokens=256, messages=[{"role": "user", "content": "Stream about volcanoes"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "volcanoes" in text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_tool_round_trip(claude, model):
    messages = [{"role": "user", "content": "Use get_weather and get_time for Lima"}]
    first = claude.messages.create(model=model, max_tokens=512, messages=messages, tools=TOOLS)
    assert first.stop_reason == "tool_use"
    calls = [block for block in first.content if block.type == "tool_use"]
    assert [c.name for c in calls] == ["get_weather", "get_time"]
    assert isinstance(calls[0].input["city"], str) and calls[0].input["unit"] in ("c", "f")
    messages.append({"role": "assistant", "content": [c.model_dump() for c in first.content]})
    messages.append(
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": calls[0].id, "content": "WEATHER-17C"},
                {"type": "tool_result", "tool_use_id": calls[1].id, "content": "TIME-08:15"},
            ],
        }
    )
    second = claude.messages.create(model=model, max_tokens=512, messages=messages, tools=TOOLS)
    answer = second.content[0].text
    assert "WEATHER-17C" in answer and "TIME-08:15" in answer


@pytest.mark.parametrize("model", MODELS)
def test_streamed_tool_calls(claude, model):
    with claude.messages.stream(
        model=model,
        max_tokens=512,
        messages=[{"role": "user", "content": "Use get_weather and get_time for Lima"}],
        tools=TOOLS,
    ) as stream:
        final = stream.get_final_message()
    calls = [block for block in final.content if block.type == "tool_use"]
    assert [c.name for c in calls] == ["get_weather", "get_time"]
    assert all(isinstance(c.input, dict) for c in calls)
    assert json.loads(json.dumps(calls[0].input))["city"]


def test_errors_raise_the_sdks_exceptions(claude, gateway_url):
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(
            model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "x"}], extra_body={"bogus": 1}
        )
    assert "bogus" in str(bad.value)
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=gateway_url, api_key="wrong", max_retries=0).messages.create(
            model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(anthropic.RateLimitError):
        claude.messages.create(model="throttled", max_tokens=10, messages=[{"role": "user", "content": "x"}])


def test_count_tokens(claude):
    counted = claude.messages.count_tokens(
        model="gpt-4o", messages=[{"role": "user", "content": "How many tokens is this sentence?"}]
    )
    assert counted.input_tokens > 0
