"""The official `openai` SDK's own `bedrock` and `vertex` providers, pointed at Crossbar's
simulators of those doors, work unchanged: the Bedrock Mantle simulator takes the SDK's SigV4
signature (service `bedrock-mantle`) and its Bedrock API key, the Vertex simulator its OAuth
token, each at the path the SDK builds. This is how we know the simulators speak the real
dialect, not only what Crossbar sends."""

import os
import pathlib
import subprocess

import pytest
from openai import OpenAI
from openai.providers import bedrock, vertex

ROOT = pathlib.Path(__file__).resolve().parents[2]


def simulator(dialect):
    binary = os.environ.get("CROSSBAR_BIN", str(ROOT / "target" / "debug" / "crossbar"))
    proc = subprocess.Popen(
        [binary, "sim", "--dialect", dialect, "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    address = proc.stdout.readline().strip()
    assert address.startswith("127.0.0.1:"), address
    return proc, f"http://{address}"


@pytest.fixture(scope="module")
def mantle():
    proc, url = simulator("bedrock-mantle")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def vertex_sim():
    proc, url = simulator("vertex")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def mantle_sigv4(url):
    return bedrock(
        base_url=f"{url}/openai/v1",
        region="us-east-1",
        access_key_id="AKIDEXAMPLE",
        secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    )


def mantle_api_key(url):
    return bedrock(base_url=f"{url}/openai/v1", region="us-east-1", api_key="bedrock-api-key-abc")


@pytest.mark.parametrize("auth", [mantle_sigv4, mantle_api_key], ids=["sigv4", "bedrock-api-key"])
def test_bedrock_provider_reaches_mantle_responses(mantle, auth):
    client = OpenAI(provider=auth(mantle), max_retries=0)
    answer = client.responses.create(model="openai.gpt-5.4", input="Say hi", store=False)
    assert answer.output_text == "You said: Say hi"
    assert answer.usage.input_tokens == 9
    events = list(
        client.responses.create(model="openai.gpt-5.4", input="Say hi", store=False, stream=True)
    )
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == "You said: Say hi"


def test_mantle_refuses_what_the_real_one_refuses(mantle):
    client = OpenAI(provider=mantle_api_key(mantle), max_retries=0)
    # OpenAI's own models only: an id without Bedrock's provider prefix is unknown.
    with pytest.raises(Exception) as refused:
        client.responses.create(model="gpt-5.4", input="Say hi", store=False)
    assert getattr(refused.value, "status_code", None) == 404


def test_vertex_provider_reaches_publishers_openai_responses(vertex_sim):
    base = f"{vertex_sim}/v1/projects/crossbar-sim/locations/us-central1/publishers/openai/v1"
    client = OpenAI(provider=vertex(base_url=base, token_provider=lambda: "ya29.test-token"), max_retries=0)
    answer = client.responses.create(model="gpt-5.4", input="Say hi", store=False)
    assert answer.output_text == "You said: Say hi"
    events = list(client.responses.create(model="gpt-5.4", input="Say hi", store=False, stream=True))
    assert events[-1].type == "response.completed"
