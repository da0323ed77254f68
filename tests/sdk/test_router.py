"""The router as the official openai SDK sees it: a stream cut after its first byte is an
exception, never a complete answer, while failures before the first byte fail over unseen."""

import os
import pathlib
import subprocess

import openai
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def router_client():
    binary = os.environ.get("CROSSBAR_BIN", str(ROOT / "target" / "debug" / "crossbar"))
    config = pathlib.Path(__file__).with_name("crossbar.router.toml")
    proc = subprocess.Popen(
        [binary, "serve", "--config", str(config), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().strip()
    assert line.startswith("crossbar listening on "), line
    url = line.removeprefix("crossbar listening on ")
    yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    proc.terminate()
    assert proc.wait(timeout=30) == 0


def test_a_stream_cut_after_the_first_byte_raises(router_client):
    raw = router_client.chat.completions.with_raw_response.create(
        model="cut",
        messages=[{"role": "user", "content": "a long answer about many things please"}],
        stream=True,
    )
    # Content had been sent from this deployment: the router may not switch any more.
    assert raw.headers["x-crossbar-provider"] == "sim-cut"
    pieces = []
    with pytest.raises(openai.APIError):
        for chunk in raw.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
    assert pieces, "some content arrived before the cut"


def test_failures_before_the_first_byte_fail_over_unseen(router_client):
    raw = router_client.chat.completions.with_raw_response.create(
        model="failover",
        messages=[{"role": "user", "content": "Stream about rivers"}],
        stream=True,
    )
    assert raw.headers["x-crossbar-provider"] == "sim-up"
    assert raw.headers["x-crossbar-attempts"] == "2"
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert "rivers" in text
    answer = router_client.chat.completions.create(
        model="failover", messages=[{"role": "user", "content": "Tell me about otters"}]
    )
    assert "otters" in answer.choices[0].message.content
