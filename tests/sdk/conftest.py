"""Starts the real `crossbar serve` binary on an ephemeral port for the SDK tests."""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
KEY = "sk-crossbar-sdk-test"


@pytest.fixture(scope="session")
def gateway_url():
    binary = os.environ.get("CROSSBAR_BIN", str(ROOT / "target" / "debug" / "crossbar"))
    config = pathlib.Path(__file__).with_name("crossbar.sdk.toml")
    proc = subprocess.Popen(
        [binary, "serve", "--config", str(config), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().strip()
    assert line.startswith("crossbar listening on "), line
    url = line.removeprefix("crossbar listening on ")
    yield url
    proc.terminate()
    assert proc.wait(timeout=30) == 0


@pytest.fixture()
def client(gateway_url):
    from openai import OpenAI

    return OpenAI(base_url=f"{gateway_url}/v1", api_key=KEY, max_retries=0)
