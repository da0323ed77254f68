"""The official `openai` Python SDK drives the gateway unchanged."""

import base64
import json

import openai
import pytest
from pydantic import BaseModel

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city", "unit"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Local time in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
]

# A 1x1 PNG.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-azure"])
def test_chat(client, model):
    completion = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say something about lighthouses"}]
    )
    assert "lighthouses" in completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-azure"])
def test_streaming_with_usage(client, model):
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Stream a sentence about harbours"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "harbours" in text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-azure"])
def test_tool_round_trip_with_parallel_calls(client, model):
    messages = [{"role": "user", "content": "Call get_weather and get_time for Lisbon"}]
    first = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    weather_args = json.loads(calls[0].function.arguments)
    assert isinstance(weather_args["city"], str) and weather_args["unit"] in ("c", "f")
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": calls[0].id, "content": '{"temp_c": 19}'})
    messages.append({"role": "tool", "tool_call_id": calls[1].id, "content": "09:30"})
    second = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
    answer = second.choices[0].message.content
    assert "temp_c" in answer and "09:30" in answer


def test_streamed_tool_calls_accumulate(client):
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Call get_weather and get_time for Lisbon"}],
        tools=TOOLS,
        stream=True,
    )
    calls = {}
    for chunk in stream:
        for fragment in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(fragment.index, {"name": "", "arguments": ""})
            if fragment.function.name:
                call["name"] = fragment.function.name
            call["arguments"] += fragment.function.arguments or ""
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    for call in calls.values():
        assert isinstance(json.loads(call["arguments"])["city"], str)


class Person(BaseModel):
    name: str
    age: int
    hobbies: list[str]


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-azure"])
def test_structured_output_parse(client, model):
    completion = client.chat.completions.parse(
        model=model,
        messages=[{"role": "user", "content": "Extract: Ana is 31 and likes chess"}],
        response_format=Person,
    )
    person = completion.choices[0].message.parsed
    assert isinstance(person, Person)
    assert isinstance(person.hobbies, list)


def test_image_as_data_url(client):
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content


def test_embeddings(client):
    result = client.embeddings.create(model="text-embedding-3-small", input=["red apple", "green apple", "blue sky"])
    vectors = [d.embedding for d in result.data]
    assert len(vectors) == 3 and len(vectors[0]) == 1536
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))
    assert abs(dot(vectors[0], vectors[0]) - 1.0) < 1e-3
    # Texts sharing words are closer.
    assert dot(vectors[0], vectors[1]) > dot(vectors[0], vectors[2])
    floats = client.embeddings.create(model="text-embedding-3-small", input="red apple", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(vectors[0], abs=1e-6)


def test_models_list(client):
    ids = sorted(m.id for m in client.models.list())
    assert ids == [
        "claude-on-bedrock",
        "claude-sonnet",
        "gemini-flash",
        "gpt-4o",
        "gpt-4o-azure",
        "text-embedding-3-small",
        "throttled",
    ]
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"


def test_errors_raise_the_right_exceptions(client, gateway_url):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}], extra_body={"not_a_field": 1}
        )
    assert "not_a_field" in str(bad.value)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{gateway_url}/v1", api_key="sk-wrong", max_retries=0).models.list()
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="throttled", messages=[{"role": "user", "content": "x"}])
    # The upstream asked for 30 s; once the gateway knows, it answers with what is left of it.
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 30


def test_base64_embeddings_are_decoded_by_the_sdk(client):
    raw = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="hello", encoding_format="base64"
    )
    payload = json.loads(raw.http_response.text)
    decoded = base64.b64decode(payload["data"][0]["embedding"])
    assert len(decoded) == 1536 * 4


def test_responses_input_items_list(client):
    """`client.responses.input_items.list` pages through a stored response's own input items,
    and the SDK's auto-pagination follows `after` to the end."""
    created = client.responses.create(
        model="gpt-4o",
        input=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "Say hello."},
            {"role": "user", "content": [{"type": "input_text", "text": "Then say goodbye."}]},
        ],
    )
    first = client.responses.input_items.list(created.id, order="asc", limit=2)
    assert [item.type for item in first.data] == ["message", "message"]
    assert first.data[0].role == "developer"
    assert first.data[1].content[0].text == "Say hello."
    assert first.has_more and first.first_id == first.data[0].id
    # Iterating the page fetches the next one with `after`.
    everything = list(client.responses.input_items.list(created.id, order="asc", limit=2))
    assert [item.content[0].text for item in everything] == ["Be brief.", "Say hello.", "Then say goodbye."]
    assert len({item.id for item in everything}) == 3
    newest_first = client.responses.input_items.list(created.id)
    assert [item.id for item in newest_first.data] == [item.id for item in reversed(everything)]
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list("resp_missing")
