#!/usr/bin/env bash
# Agents as a service, offline: the orchestration layer in "cloud A" (the runs API, its store and
# two workers) and the model layer in "cloud B" (a gateway on simulated Bedrock and Vertex),
# talking only HTTP. Submits four runs, kills a worker mid-way, and shows every run completing.
#
#   examples/agents-service/run.sh            # uses `crossbar` from PATH
#   CROSSBAR=target/release/crossbar examples/agents-service/run.sh
#
# In production cloud A's store is PostgreSQL (`--store postgres://...`, any number of workers on
# any hosts); here it is one SQLite file, which serves one host.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=${CROSSBAR:-crossbar}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Starts `crossbar ARGS` in the background; its first stdout line goes to $work/NAME.line.
start() {
  local name=$1; shift
  (cd "$work" && exec "$bin" "$@" >"$work/$name.out" 2>"$work/$name.log") &
  pids+=($!)
  for _ in $(seq 1 100); do
    if [ -s "$work/$name.out" ]; then head -n1 "$work/$name.out" >"$work/$name.line"; return; fi
    sleep 0.1
  done
  echo "$name did not start:" >&2; cat "$work/$name.log" >&2; exit 1
}

cp "$here/models.toml" "$work/"
cp -r "$here/agents" "$work/"

# Cloud B: the model layer.
start models serve --config models.toml --listen 127.0.0.1:0
models_url=$(sed 's/^crossbar listening on //' "$work/models.line")

# Cloud A: the runs API and the queue's store; it holds no model catalog of its own.
cat >"$work/runs.toml" <<TOML
[server]
api_keys = ["sk-runs-example"]

[store]
url = "sqlite://runs.db"

[agents]
specs = "agents"
TOML
start runs serve --config runs.toml --listen 127.0.0.1:0
runs_url=$(sed 's/^crossbar listening on //' "$work/runs.line")

# Cloud A: two workers, reaching models only through cloud B's gateway.
for w in 1 2; do
  start "worker$w" agent worker --gateway "$models_url" --key sk-models-example \
    --store sqlite://runs.db --id "worker-$w" --concurrency 2 --lease-s 2 --poll-ms 100
done

echo "model layer (cloud B):     $models_url"
echo "runs API (cloud A):        $runs_url"
for n in 1 2 3 4; do
  curl -sf -X POST "$runs_url/v1/crossbar/runs" \
    -H "Authorization: Bearer sk-runs-example" -H "Idempotency-Key: trip-$n" \
    -H "Content-Type: application/json" \
    -d "{\"agent\": \"estimator\", \"input\": {\"nights\": $((n + 1)), \"per_night\": 120}}" >/dev/null
done
echo "submitted 4 runs; stopping worker-1 abruptly (SIGKILL)"
sleep 0.3
kill -9 "${pids[2]}" 2>/dev/null || true
wait "${pids[2]}" 2>/dev/null || true

# Runs with STATUS, through the runs API.
count() {
  curl -sf "$runs_url/v1/crossbar/runs?status=$1" -H "Authorization: Bearer sk-runs-example" \
    | { grep -o '"id"' || true; } | wc -l
}
# Wait until no run is queued or running (a run worker-1 held is taken over after its lease).
for _ in $(seq 1 300); do
  [ $(($(count queued) + $(count running))) -eq 0 ] && break
  sleep 0.1
done
(cd "$work" && "$bin" agent runs --store sqlite://runs.db)
echo "completed: $(count completed) of 4"
[ "$(count completed)" -eq 4 ]
