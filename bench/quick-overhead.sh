#!/usr/bin/env bash
# A quick figure, not the full benchmark: sequential keep-alive latency of one small chat call
# straight to a zero-latency simulator and through the gateway in front of it, interleaved in
# rounds, non-streamed and streamed. The difference is the gateway's added latency.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p crossbar >&2
bin=target/release/crossbar
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" sim --dialect openai --listen 127.0.0.1:0 > "$work/sim.out" 2>/dev/null &
until [ -s "$work/sim.out" ]; do sleep 0.1; done
sim="$(head -1 "$work/sim.out")"
cat > "$work/gateway.toml" <<TOML
[store]
enabled = false

[[providers]]
name = "up"
kind = "openai-compatible"
endpoint = "http://$sim/v1"

[[models]]
name = "m"
deployments = [{ provider = "up", target = "gpt-4o" }]
TOML
RUST_LOG=warn "$bin" serve --config "$work/gateway.toml" --listen 127.0.0.1:0 > "$work/gw.out" 2>/dev/null &
until [ -s "$work/gw.out" ]; do sleep 0.1; done
gateway="$(head -1 "$work/gw.out" | sed 's/crossbar listening on //')"
python3 bench/overhead.py "http://$sim/v1" "$gateway" nostream
python3 bench/overhead.py "http://$sim/v1" "$gateway" stream
