"""LangChain drives the gateway unchanged: `langchain-openai`'s `ChatOpenAI` with `bind_tools`
(over Chat Completions and over the Responses API) and `langchain-anthropic`'s `ChatAnthropic`
against `/v1/messages`, each on simulated providers of two dialects."""

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from conftest import KEY


@tool
def get_weather(city: str, unit: str) -> str:
    """Current weather in a city.

    Args:
        city: The city.
        unit: "c" or "f".
    """
    return f"sunny and 21 degrees in {city}"


@tool
def get_time(city: str) -> str:
    """Local time in a city.

    Args:
        city: The city.
    """
    return f"it is noon in {city}"


TOOLS = {"get_weather": get_weather, "get_time": get_time}


def run_tool_loop(llm):
    """One tool round trip: the model calls both tools, we run them, it answers with text."""
    bound = llm.bind_tools([get_weather, get_time])
    messages = [HumanMessage("Use get_weather and get_time for the city.")]
    first = bound.invoke(messages)
    names = sorted(call["name"] for call in first.tool_calls)
    assert names == ["get_time", "get_weather"], first
    for call in first.tool_calls:
        # Schema-valid: every required argument present, as a string.
        required = TOOLS[call["name"]].args_schema.model_json_schema()["required"]
        assert all(isinstance(call["args"].get(name), str) for name in required), call
    assert first.usage_metadata["input_tokens"] > 0
    assert first.usage_metadata["output_tokens"] > 0
    messages.append(first)
    for call in first.tool_calls:
        output = TOOLS[call["name"]].invoke(call["args"])
        messages.append(ToolMessage(output, tool_call_id=call["id"]))
    final = bound.invoke(messages)
    assert not final.tool_calls
    assert "sunny and 21 degrees" in final.text and "noon" in final.text, final.text
    assert final.usage_metadata["total_tokens"] > 0
    return final


@pytest.mark.parametrize("responses_api", [False, True], ids=["chat", "responses"])
@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet"])
def test_chat_openai_bind_tools(gateway_url, model, responses_api):
    llm = ChatOpenAI(
        model=model,
        base_url=f"{gateway_url}/v1",
        api_key=KEY,
        max_retries=0,
        use_responses_api=responses_api,
        # The Responses API client continues from the stored response without resending.
        use_previous_response_id=responses_api,
    )
    run_tool_loop(llm)


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet"])
def test_chat_openai_streams(gateway_url, model):
    llm = ChatOpenAI(
        model=model,
        base_url=f"{gateway_url}/v1",
        api_key=KEY,
        max_retries=0,
        stream_usage=True,
    )
    chunks = list(llm.stream("Say something short."))
    assert len(chunks) > 1
    message = chunks[0]
    for chunk in chunks[1:]:
        message = message + chunk
    assert message.text
    assert message.usage_metadata["output_tokens"] > 0


@pytest.mark.parametrize("model", ["claude-sonnet", "gpt-4o"])
def test_chat_anthropic_bind_tools(gateway_url, model):
    llm = ChatAnthropic(
        model=model,
        base_url=gateway_url,
        api_key=KEY,
        max_retries=0,
        max_tokens=512,
    )
    run_tool_loop(llm)
