#!/usr/bin/env python3
"""Side-by-side benchmark: direct -> upstream, then nginx, Crossbar, LiteLLM and Portkey in front
of the same zero-latency simulator, all in one run.

Called by bench/run, which builds the release binaries, installs nginx and the peers first, and
passes its own command line on. Every results file is stamped with the commit, whether the tree
was dirty and the exact command; it holds this run only (never spliced with another), with its
raw measurements beside it as JSON. Each cell (mode x concurrency x target) is measured
`--rounds` times with the order of targets rotated every round; tables give the median and the
spread (min-max) over rounds, and every ratio is computed within a round (same moment, same
machine state) before its median and spread are taken.

Figures are measured, never assumed: a gateway's added latency is its latency minus direct's in
the same round; CPU per request is the process tree's CPU time (/proc/<pid>/stat, workers
included) over the measured window divided by the requests answered in it; RSS is the tree's
VmRSS at the end of the window. Requests still in flight when a window closes are counted as
incomplete, never dropped silently.
"""

import argparse
import base64
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "crossbar")
LOADGEN = os.path.join(ROOT, "target", "release", "crossbar-loadgen")
PEERS = os.path.join(ROOT, "bench", ".peers")
TICK = os.sysconf("SC_CLK_TCK")
PROCS = []
ALL_TARGETS = ["direct", "nginx", "crossbar", "litellm", "portkey"]
GATEWAYS = ["nginx", "crossbar", "litellm", "portkey"]
# LiteLLM's proxy refuses to start without a master key (one that does not look weak).
LITELLM_KEY = "sk-bench-4f1c9a7e2b6d4e8fa0c3b5d7e9f1a2c4"


# ---------------------------------------------------------------- processes and /proc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(args, log=None, read_stdout=True, **kw):
    """Starts a process in a session of its own (so `stop` ends its workers too). Output that
    is not read goes to the log, never to a pipe that could fill and stall the process."""
    stderr = open(log, "w") if log else subprocess.DEVNULL
    stdout = subprocess.PIPE if read_stdout else stderr
    proc = subprocess.Popen(args, stdout=stdout, stderr=stderr, text=True,
                            start_new_session=True, **kw)
    PROCS.append(proc)
    return proc


def stop(proc):
    """Ends a process we started and its tree (LiteLLM and nginx have workers)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except OSError:
            proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        proc.wait()


def first_line(proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line:
            return line.strip()
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    sys.exit(f"{proc.args[0]} did not start")


def wait_port(port, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def family(pid):
    """The process and its descendants (nginx's, LiteLLM's and node's workers)."""
    pids, frontier = {pid}, [pid]
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except OSError:
                pass
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in pids:
                pids.add(child)
                frontier.append(child)
    return pids


def cpu_seconds(pid):
    total = 0
    for p in family(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / TICK


def rss_mb(pid):
    total = 0
    for p in family(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def settle(pids, timeout=15.0):
    """Waits until the processes are idle (a peer may still be working off requests the last
    window abandoned), so one target's backlog is not billed to the next."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        before = sum(cpu_seconds(p) for p in pids if p)
        time.sleep(0.25)
        if sum(cpu_seconds(p) for p in pids if p) - before <= 0.25 * 0.1:
            return


# ---------------------------------------------------------------- load generation


def loadgen(target, body_path, concurrency=1, duration=5.0, warmup=0.0, rate=None, stream=False):
    args = [LOADGEN, "--url", target.url, "--body", body_path, "--concurrency", str(concurrency),
            "--duration", str(duration), "--warmup", str(warmup)]
    if rate:
        args += ["--rate", str(rate)]
    for header in target.headers:
        args += ["--header", header]
    if stream:
        args += ["--expect-tail", "[DONE]"]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"loadgen failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


class Target:
    def __init__(self, name, url, proc=None, headers=(), log=None, version=""):
        self.name, self.url, self.proc = name, url, proc
        self.pid = proc.pid if proc else None
        self.headers, self.log, self.version = list(headers), log, version

    def log_text(self):
        if not self.log:
            return ""
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def measure(target, sim_pid, body_path, concurrency, duration, warmup, stream):
    """One measured window, after an unmeasured one that warms connections and caches."""
    settle([target.pid, sim_pid])
    loadgen(target, body_path, concurrency, duration=warmup, stream=stream)
    settle([target.pid, sim_pid])
    before = (cpu_seconds(target.pid) if target.pid else 0, cpu_seconds(sim_pid))
    result = loadgen(target, body_path, concurrency, duration, stream=stream)
    after = (cpu_seconds(target.pid) if target.pid else 0, cpu_seconds(sim_pid))
    n = result["requests"]
    result["cpu_ms"] = (after[0] - before[0]) * 1000 / n if target.pid and n else None
    result["upstream_cpu_ms"] = (after[1] - before[1]) * 1000 / n if n else None
    result["rss_mb"] = rss_mb(target.pid) if target.pid else None
    return result


def rotated(targets, round_no):
    k = round_no % len(targets)
    return targets[k:] + targets[:k]


# ---------------------------------------------------------------- statistics and formatting


def spread(values):
    """(median, min, max) of the values that exist, or None."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def fmt(value, digits=2):
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def fmt_spread(values, digits=2, suffix=""):
    s = spread(values)
    if s is None:
        return "-"
    med, lo, hi = s
    if len(values) == 1 or fmt(lo, digits) == fmt(hi, digits):
        return f"{fmt(med, digits)}{suffix}"
    return f"{fmt(med, digits)}{suffix} ({fmt(lo, digits)}–{fmt(hi, digits)})"


def paired(rounds, name, base, key, op):
    """Per-round values of op(target's key, base's key), for targets measured in that round."""
    out = []
    for r in rounds:
        if name in r and base in r:
            a, b = r[name].get(key), r[base].get(key)
            if a is not None and b is not None:
                value = op(a, b)
                if value is not None:
                    out.append(value)
    return out


def ratio(a, b):
    return a / b if a is not None and b else None


def minus(a, b):
    return a - b if a is not None and b is not None else None


def chat_body(words, stream, extra_content=None):
    text = " ".join(f"w{i}" for i in range(words))
    content = text if extra_content is None else [{"type": "text", "text": text}] + extra_content
    body = {"model": "gpt-4o", "max_tokens": words + 8, "stream": stream,
            "messages": [{"role": "user", "content": content}]}
    return json.dumps(body)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


# ---------------------------------------------------------------- targets


def start_sim(work, name, config=None):
    args = [BIN, "sim", "--dialect", "openai", "--listen", "127.0.0.1:0", "--no-record"]
    if config:
        args += ["--config", write(f"{work}/{name}.toml", config)]
    proc = spawn(args)
    return proc, first_line(proc).split()[0]


def start_nginx(work, sim_addr, name="nginx"):
    port = free_port()
    conf = f"""
worker_processes auto;
error_log {work}/{name}-error.log warn;
pid {work}/{name}.pid;
events {{ worker_connections 8192; }}
worker_rlimit_nofile 65536;
http {{
    access_log off;
    keepalive_requests 1000000;
    upstream up {{ server {sim_addr}; keepalive 512; keepalive_requests 1000000; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 600s;
            client_max_body_size 64m;
        }}
    }}
}}
"""
    path = write(f"{work}/{name}.conf", conf)
    proc = spawn([shutil.which("nginx") or "/usr/sbin/nginx", "-c", path, "-p", work,
                  "-g", "daemon off;"], read_stdout=False)
    if not wait_port(port, proc):
        sys.exit("nginx did not start")
    return Target("nginx", f"http://127.0.0.1:{port}/v1/chat/completions", proc, version=nginx_version())


def start_crossbar(work, sim_addr, name="crossbar"):
    conf = f"""
[store]
url = "{work}/{name}.db"

[[providers]]
name = "up"
kind = "openai-compatible"
endpoint = "http://{sim_addr}/v1"

[[models]]
name = "gpt-4o"
deployments = [{{ provider = "up", target = "gpt-4o", price = {{ input = 2.5, output = 10.0 }} }}]
"""
    path = write(f"{work}/{name}.toml", conf)
    proc = spawn([BIN, "serve", "--config", path, "--listen", "127.0.0.1:0"],
                 env={**os.environ, "RUST_LOG": "warn"})
    addr = first_line(proc).split()[-1].removeprefix("http://")
    return Target("crossbar", f"http://{addr}/v1/chat/completions", proc, version=commit()[0][:12])


def litellm_version():
    try:
        out = subprocess.run([f"{PEERS}/litellm/bin/python", "-c",
                              "import importlib.metadata as m; print(m.version('litellm'))"],
                             capture_output=True, text=True, timeout=60)
        return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def start_litellm(work, sim_addr, workers, name="litellm"):
    exe = f"{PEERS}/litellm/bin/litellm"
    if not os.path.exists(exe):
        return None, "not installed (bench/run installs it; see its output)"
    conf = f"""
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: http://{sim_addr}/v1
      api_key: sk-bench
litellm_settings:
  telemetry: false
general_settings:
  master_key: {LITELLM_KEY}
"""
    path = write(f"{work}/{name}.yaml", conf)
    port = free_port()
    log = f"{work}/{name}.log"
    proc = spawn([exe, "--config", path, "--port", str(port), "--host", "127.0.0.1",
                  "--num_workers", str(workers)], log=log, read_stdout=False,
                 env={**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False",
                      "PYTHONUNBUFFERED": "1"})
    if not wait_port(port, proc, timeout=240):
        stop(proc)
        return None, f"did not start (log: {tail(log)})"
    return Target("litellm", f"http://127.0.0.1:{port}/v1/chat/completions", proc, log=log,
                  headers=[f"authorization: Bearer {LITELLM_KEY}"],
                  version=f"litellm {litellm_version()}, {workers} worker(s)"), None


def portkey_version():
    try:
        with open(f"{PEERS}/portkey/node_modules/@portkey-ai/gateway/package.json") as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return ""


def start_portkey(work, sim_addr, name="portkey"):
    script = f"{PEERS}/portkey/node_modules/@portkey-ai/gateway/build/start-server.js"
    if not os.path.exists(script):
        return None, "not installed (bench/run installs it; see its output)"
    port = free_port()
    log = f"{work}/{name}.log"
    proc = spawn(["node", script, f"--port={port}", "--headless"], log=log, read_stdout=False,
                 env={**os.environ, "NODE_ENV": "production"})
    if not wait_port(port, proc, timeout=60):
        stop(proc)
        return None, f"did not start (log: {tail(log)})"
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    # Portkey takes its upstream per request: the provider and a custom base URL.
    headers = ["x-portkey-provider: openai", f"x-portkey-custom-host: http://{sim_addr}/v1",
               "authorization: Bearer sk-bench"]
    return Target("portkey", f"http://127.0.0.1:{port}/v1/chat/completions", proc, headers=headers,
                  log=log, version=f"@portkey-ai/gateway {portkey_version()}, node {node}"), None


def start_target(name, work, sim_addr, args, suffix=""):
    """(Target, None) or (None, why it is missing)."""
    if name == "nginx":
        return start_nginx(work, sim_addr, name="nginx" + suffix), None
    if name == "crossbar":
        return start_crossbar(work, sim_addr, name="crossbar" + suffix), None
    if name == "litellm":
        return start_litellm(work, sim_addr, args.litellm_workers, name="litellm" + suffix)
    if name == "portkey":
        return start_portkey(work, sim_addr, name="portkey" + suffix)
    return Target("direct", f"http://{sim_addr}/v1/chat/completions"), None


def tail(path, n=300):
    try:
        with open(path, errors="replace") as f:
            text = f.read()
        return " ".join(text[-n:].split())
    except OSError:
        return ""


# ---------------------------------------------------------------- sections


def side_by_side(targets, sim, work, args, raw, notes, modes=(False, True)):
    """Closed-loop table: every target at every level, `rounds` times in rotated order."""
    lines = []
    levels = [int(c) for c in args.levels.split(",")]
    names = [t.name for t in targets]
    bodies = {False: write(f"{work}/small.json", chat_body(17, False)),
              True: write(f"{work}/stream.json", chat_body(17, True))}
    for stream in modes:
        mode = "stream" if stream else "plain"
        lines.append(f"\n### {'Streaming (~20 chunks)' if stream else 'Non-streaming'}\n")
        lines.append("| conc | target | req/s | p50 ms | p99 ms | TTFB p50 ms | +p50 vs direct | "
                     "+p99 vs direct | req/s ÷ nginx | CPU ms/req | RSS MB | errors | incomplete | "
                     "peak in flight |")
        lines.append("|" + "---|" * 14)
        print("\n".join(lines[-3:]), flush=True)
        for c in levels:
            rounds = []
            for r in range(args.rounds):
                results = {}
                for t in rotated(targets, r):
                    results[t.name] = measure(t, sim.pid, bodies[stream], c, args.duration,
                                              args.warmup, stream)
                rounds.append(results)
            raw.setdefault(mode, {})[str(c)] = rounds
            start = len(lines)
            for name in names:
                col = lambda key: [r[name][key] for r in rounds]
                gateway = name != "direct"
                lines.append("| " + " | ".join([
                    str(c), name, fmt_spread(col("rps"), 0), fmt_spread(col("p50_ms"), 3),
                    fmt_spread(col("p99_ms"), 3), fmt_spread(col("ttfb_p50_ms"), 3),
                    fmt_spread(paired(rounds, name, "direct", "p50_ms", minus), 3) if gateway else "-",
                    fmt_spread(paired(rounds, name, "direct", "p99_ms", minus), 3) if gateway else "-",
                    fmt_spread(paired(rounds, name, "nginx", "rps", ratio), 2, "×")
                    if "nginx" in names else "-",
                    fmt_spread(col("cpu_ms"), 3), fmt_spread(col("rss_mb"), 1),
                    str(sum(col("errors"))), str(sum(col("incomplete"))),
                    str(max(col("peak_in_flight"))),
                ]) + " |")
                errors = [r[name]["first_error"] for r in rounds if r[name].get("first_error")]
                if errors:
                    notes.append(f"{name}, {mode}, c={c}: {sum(col('errors'))} errors in "
                                 f"{args.rounds} rounds; first: {errors[0][:200]}")
            print("\n".join(lines[start:]), flush=True)
    return lines


def open_loop(targets, sim, work, args, raw):
    body = write(f"{work}/small.json", chat_body(17, False))
    lines = [f"\n### Open loop at {args.rate:g} req/s (non-streaming, latency from each request's "
             f"due time, {args.openloop_duration:g} s per window)\n",
             "| target | answered | errors | incomplete | peak in flight | p50 ms | p99 ms | "
             "+p50 vs direct | +p99 vs direct |",
             "|---|---|---|---|---|---|---|---|---|"]
    rounds = []
    for r in range(args.rounds):
        results = {}
        for t in rotated(targets, r):
            settle([t.pid, sim.pid])
            loadgen(t, body, 1, duration=args.warmup)
            settle([t.pid, sim.pid])
            results[t.name] = loadgen(t, body, duration=args.openloop_duration, rate=args.rate)
        rounds.append(results)
    raw["openloop"] = rounds
    for t in targets:
        col = lambda key: [r[t.name][key] for r in rounds]
        gateway = t.name != "direct"
        lines.append("| " + " | ".join([
            t.name, fmt_spread(col("requests"), 0), str(sum(col("errors"))),
            str(sum(col("incomplete"))), str(max(col("peak_in_flight"))),
            fmt_spread(col("p50_ms"), 3), fmt_spread(col("p99_ms"), 3),
            fmt_spread(paired(rounds, t.name, "direct", "p50_ms", minus), 3) if gateway else "-",
            fmt_spread(paired(rounds, t.name, "direct", "p99_ms", minus), 3) if gateway else "-",
        ]) + " |")
    print("\n".join(lines), flush=True)
    return lines


def sizes(direct, crossbar, sim, work, args, raw):
    """Overhead as the request grows: 1 KB, 100 KB, and 2 MB carrying a base64 image."""
    png = base64.b64encode(os.urandom(1_500_000)).decode()
    cases = [("1 KB", chat_body(150, False)), ("100 KB", chat_body(15_000, False)),
             ("2 MB image", chat_body(20, False, [{"type": "image_url", "image_url": {
                 "url": f"data:image/png;base64,{png}"}}]))]
    lines = ["\n### Request size (concurrency 1, non-streaming)\n",
             "| body | bytes | direct p50 | crossbar p50 | +p50 | +p99 | crossbar CPU ms/req |",
             "|---|---|---|---|---|---|---|"]
    raw["sizes"] = {}
    for label, body in cases:
        path = write(f"{work}/size.json", body)
        rounds = []
        for r in range(args.rounds):
            results = {}
            for t in rotated([direct, crossbar], r):
                results[t.name] = measure(t, sim.pid, path, 1, args.duration, args.warmup, False)
            rounds.append(results)
        raw["sizes"][label] = rounds
        lines.append("| " + " | ".join([
            label, str(len(body)), fmt_spread([r["direct"]["p50_ms"] for r in rounds], 3),
            fmt_spread([r["crossbar"]["p50_ms"] for r in rounds], 3),
            fmt_spread(paired(rounds, "crossbar", "direct", "p50_ms", minus), 3),
            fmt_spread(paired(rounds, "crossbar", "direct", "p99_ms", minus), 3),
            fmt_spread([r["crossbar"]["cpu_ms"] for r in rounds], 3)]) + " |")
    print("\n".join(lines), flush=True)
    return lines


def sample_rss_while(proc, pid):
    peak = rss_mb(pid)
    while proc.poll() is None:
        peak = max(peak, rss_mb(pid))
        time.sleep(0.2)
    return peak


def long_streams(crossbar, work, raw):
    """10,000-chunk streams: the gateway's memory must not grow with a stream's length."""
    # The simulator echoes at most 256 words of a prompt, but cites a tool result whole.
    words = " ".join(f"w{i}" for i in range(10_000))
    body = {"model": "gpt-4o", "max_tokens": 20_000, "stream": True, "messages": [
        {"role": "user", "content": "Read the file."},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
         "function": {"name": "read", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": words}]}
    path = write(f"{work}/long.json", json.dumps(body))
    before = rss_mb(crossbar.pid)
    proc = subprocess.Popen([LOADGEN, "--url", crossbar.url, "--body", path, "--concurrency", "4",
                             "--duration", "10", "--warmup", "0", "--expect-tail", "[DONE]"],
                            stdout=subprocess.PIPE, text=True)
    peak = sample_rss_while(proc, crossbar.pid)
    result = json.loads(proc.stdout.read())
    after = rss_mb(crossbar.pid)
    raw["long"] = {**result, "rss_before": before, "rss_peak": peak, "rss_after": after}
    lines = ["\n### 10,000-chunk streams through Crossbar (4 at a time for 10 s)\n",
             "| streams done | errors | incomplete | p50 s per stream | RSS before MB | peak MB | "
             "after MB |", "|---|---|---|---|---|---|---|",
             f"| {result['requests']} | {result['errors']} | {result['incomplete']} | "
             f"{fmt(result['p50_ms'] / 1000 if result['p50_ms'] is not None else None, 3)} | {fmt(before, 1)} | {fmt(peak, 1)} | "
             f"{fmt(after, 1)} |"]
    print("\n".join(lines), flush=True)
    return lines


def open_streams(names, work, args, raw, notes, skip):
    """RSS with `n` streams open at once, each longer than the window, through a fresh instance
    of each gateway in front of a simulator that streams slowly. The load generator reports how
    many were open (first byte in, last byte not yet) at the peak, so the figure is measured."""
    n = args.open_streams
    sim, addr = start_sim(work, "slow-sim", "ttft_ms = 0\ntokens_per_s = 4.0\n")
    # ~70 words at 4 tokens/s: every stream outlasts the 10 s window.
    path = write(f"{work}/open.json", chat_body(60, True))
    lines = [f"\n### {n} concurrent open streams (each outlasts the 10 s window)\n",
             "| target | peak open streams (receiving) | peak in flight | errors | RSS idle MB | "
             "RSS peak MB | RSS per stream KB |", "|---|---|---|---|---|---|---|"]
    raw["open_streams"] = {}
    for name in names:
        if name == "direct":
            continue
        if name in skip:
            lines.append(f"| {name} | {skip[name]} | | | | | |")
            continue
        target, why = start_target(name, work, addr, args, suffix="-streams")
        if target is None:
            lines.append(f"| {name} | {why} | | | | | |")
            continue
        time.sleep(1)
        idle = rss_mb(target.pid)
        args_ = [LOADGEN, "--url", target.url, "--body", path, "--concurrency", str(n),
                 "--duration", "10", "--warmup", "0"]
        for header in target.headers:
            args_ += ["--header", header]
        proc = subprocess.Popen(args_, stdout=subprocess.PIPE, text=True)
        peak = sample_rss_while(proc, target.pid)
        result = json.loads(proc.stdout.read())
        raw["open_streams"][name] = {**result, "rss_idle": idle, "rss_peak": peak}
        per = (peak - idle) * 1024 / result["peak_receiving"] if result["peak_receiving"] else None
        lines.append(f"| {name} | {result['peak_receiving']} | {result['peak_in_flight']} | "
                     f"{result['errors']} | {fmt(idle, 1)} | {fmt(peak, 1)} | {fmt(per, 0)} |")
        if result.get("first_error"):
            notes.append(f"{name}, open streams: first error: {result['first_error'][:200]}")
        stop(target.proc)
    stop(sim)
    print("\n".join(lines), flush=True)
    return lines


def soak(crossbar, work, args, raw):
    seconds, rate = args.soak, args.soak_rate
    body = write(f"{work}/small.json", chat_body(17, False))
    proc = subprocess.Popen([LOADGEN, "--url", crossbar.url, "--body", body, "--rate", str(rate),
                             "--duration", str(seconds), "--warmup", "0"], stdout=subprocess.PIPE,
                            text=True)
    samples = []
    start = time.time()
    while proc.poll() is None:
        samples.append((time.time() - start, rss_mb(crossbar.pid)))
        time.sleep(5)
    result = json.loads(proc.stdout.read())
    warm = [rss for t, rss in samples if t >= min(60, seconds / 5)]
    base = warm[0] if warm else 0
    drift = max(abs(r - base) for r in warm) / base * 100 if base else 0
    raw["soak"] = {**result, "rss_samples": samples, "drift_pct": drift}
    lines = [f"\n### Soak: {seconds:g} s at {rate:g} req/s through Crossbar\n",
             "| answered | errors | incomplete | p99 ms | RSS after warm-up MB | RSS end MB | "
             "max drift |", "|---|---|---|---|---|---|---|",
             f"| {result['requests']} | {result['errors']} | {result['incomplete']} | "
             f"{fmt(result['p99_ms'], 3)} | {fmt(base, 1)} | "
             f"{fmt(samples[-1][1] if samples else 0, 1)} | {fmt(drift, 1)}% |"]
    print("\n".join(lines), flush=True)
    return lines


# ---------------------------------------------------------------- the targets table


def targets_table(names, raw, args, streaming_broken):
    """The issue's targets, evaluated from this run only, with each gateway's figure beside."""
    gateways = [n for n in names if n != "direct"]

    def cell_rounds(mode, c):
        return raw.get(mode, {}).get(str(c))

    def per_target(rounds, key, base=None, op=None):
        out = {}
        for n in names:
            if rounds is None:
                out[n] = []
            elif base is None:
                out[n] = [r[n][key] for r in rounds if n in r and r[n].get(key) is not None]
            else:
                out[n] = paired(rounds, n, base, key, op)
        return out

    def versus(rounds, key, base, op, peer, higher_better):
        """Crossbar's factor over `peer` per round (>1: Crossbar ahead)."""
        if rounds is None:
            return []
        vals = []
        for r in rounds:
            if "crossbar" not in r or peer not in r:
                continue
            if base is None:
                a, b = r["crossbar"].get(key), r[peer].get(key)
            else:
                a = op(r["crossbar"][key], r[base][key]) if r["crossbar"].get(key) is not None else None
                b = op(r[peer][key], r[base][key]) if r[peer].get(key) is not None else None
            if a is None or b is None:
                continue
            if higher_better:
                v = a / b if b > 0 else None
            else:
                v = b / a if a > 0 else None
            if v is not None:
                vals.append(v)
        return vals

    rows = []
    # (label, rounds, key, base, op, digits, suffix, target test, higher better, peer_rounds_ok)
    c_hi = 64 if 64 in [int(c) for c in args.levels.split(",")] else int(args.levels.split(",")[-1])
    plain, stream, c1 = cell_rounds("plain", c_hi), cell_rounds("stream", c_hi), cell_rounds("plain", 1)
    specs = [
        (f"non-stream throughput at c={c_hi} (× nginx)", plain, "rps", "nginx", ratio, 2, "×",
         lambda v: v >= 0.7, "≥ 0.7×", True),
        (f"streamed (~20 chunks) throughput at c={c_hi} (× nginx)", stream, "rps", "nginx", ratio,
         2, "×", lambda v: v >= 0.6, "≥ 0.6×", True),
        (f"CPU per non-streamed request, c={c_hi}, metering on (ms)", plain, "cpu_ms", None, None,
         3, "", lambda v: v <= 0.1, "≤ 0.1 ms", False),
        (f"CPU per streamed request, c={c_hi} (ms)", stream, "cpu_ms", None, None, 3, "",
         lambda v: v <= 0.2, "≤ 0.2 ms", False),
        ("added p50 latency at c=1 (ms)", c1, "p50_ms", "direct", minus, 3, "",
         lambda v: v <= 0.15, "≤ 0.15 ms", False),
        ("added p99 latency at c=1 (ms)", c1, "p99_ms", "direct", minus, 3, "",
         lambda v: v <= 0.5, "≤ 0.5 ms", False),
        (f"added p99 at open-loop {args.rate:g} req/s (ms)", raw.get("openloop"), "p99_ms",
         "direct", minus, 3, "", lambda v: v <= 1.0, "≤ 1 ms", False),
    ]
    lines = ["\n## Targets (this run only; median over rounds, spread min–max)\n",
             "| measure | " + " | ".join(names) + " | target | Crossbar | "
             + " | ".join(f"Crossbar vs {p}" for p in gateways if p not in ("nginx", "crossbar"))
             + " |",
             "|" + "---|" * (len(names) + 3 + len([p for p in gateways if p not in ("nginx", "crossbar")]))]
    peers = [p for p in gateways if p not in ("nginx", "crossbar")]
    ahead = {p: [0, 0] for p in peers}
    for label, rounds, key, base, op, digits, suffix, test, goal, higher in specs:
        if rounds is None:
            lines.append(f"| {label} | " + " | ".join("-" for _ in names) +
                         f" | {goal} | not measured in this run | " + " | ".join("-" for _ in peers) + " |")
            continue
        values = per_target(rounds, key, base, op)
        cells = []
        for n in names:
            if n == base:
                cells.append("1.00×" if suffix == "×" else "-")
            elif n == "portkey" and streaming_broken and rounds is stream:
                cells.append("fails to stream")
            elif not values[n]:
                cells.append("-")
            else:
                cells.append(fmt_spread(values[n], digits, suffix))
        s = spread(values.get("crossbar", []))
        if s is None:
            verdict = "-"
        else:
            # Met only if every round meets it; a spread across the line is said as such.
            figure = fmt_spread(values["crossbar"], digits, suffix)
            if test(s[1]) and test(s[2]):
                verdict = f"**met**: {figure}"
            elif not test(s[1]) and not test(s[2]):
                verdict = f"not met: {figure}"
            else:
                verdict = f"unclear, the spread crosses the target: {figure}"
        vs = []
        for p in peers:
            if p == "portkey" and streaming_broken and rounds is stream:
                vs.append("Portkey fails to stream")
                continue
            f = versus(rounds, key, base, op, p, higher)
            if not f:
                vs.append("-")
                continue
            ahead[p][1] += 1
            if statistics.median(f) > 1:
                ahead[p][0] += 1
            counted = "" if len(f) == len(rounds) else f", {len(f)} of {len(rounds)} rounds"
            vs.append(("ahead " if statistics.median(f) > 1 else "behind ") + fmt_spread(f, 2, "×")
                      + counted)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {goal} | {verdict} | " +
                     " | ".join(vs) + " |")
    # RSS with open streams.
    streams = raw.get("open_streams")
    goal = "≤ 64 MB"
    if streams:
        cells = []
        for n in names:
            r = streams.get(n)
            broken = n == "portkey" and streaming_broken
            cells.append(f"{fmt(r['rss_peak'], 1)} ({r['peak_receiving']} open)" if r
                         else "fails to stream" if broken else "-")
        x = streams.get("crossbar")
        verdict = "-" if not x else (
            ("**met**" if x["rss_peak"] <= 64 and x["peak_receiving"] >= args.open_streams
             else "not met") + f" ({fmt(x['rss_peak'], 1)} MB, {x['peak_receiving']} open)")
        vs = []
        for p in peers:
            r = streams.get(p)
            if not r or not x:
                vs.append("-")
                continue
            f = r["rss_peak"] / x["rss_peak"] if x["rss_peak"] else 0
            ahead[p][1] += 1
            if f > 1:
                ahead[p][0] += 1
            vs.append(("ahead " if f > 1 else "behind ") + f"{f:.2f}× (one window)")
        lines.append(f"| RSS with {args.open_streams} open streams (MB) | " + " | ".join(cells) +
                     f" | {goal} | {verdict} | " + " | ".join(vs) + " |")
    else:
        lines.append(f"| RSS with {args.open_streams} open streams (MB) | " +
                     " | ".join("-" for _ in names) + f" | {goal} | not measured in this run | " +
                     " | ".join("-" for _ in peers) + " |")
    soaked = raw.get("soak")
    lines.append("| RSS flat over the soak (max drift) | " + " | ".join(
        (fmt(soaked["drift_pct"], 1) + "%" if soaked and n == "crossbar" else "-") for n in names) +
        " | ≤ 5%, 10 min | " + (("**met**" if soaked["drift_pct"] <= 5 and args.soak >= 600
                                  else "not met" if soaked["drift_pct"] > 5
                                  else f"flat, but {args.soak:g} s < 10 min") + f" ({fmt(soaked['drift_pct'], 1)}%)"
                                 if soaked else "not measured in this run") +
        " | " + " | ".join("-" for _ in peers) + " |")
    lines.append("| routing decision over 1,000 deployments | " + " | ".join("-" for _ in names) +
                 " | ≤ 10 µs | criterion, not this run: `cargo bench -p crossbar-bench` | " +
                 " | ".join("-" for _ in peers) + " |")
    summary = "; ".join(f"ahead of {p} on {a} of {t} rows measured" for p, (a, t) in ahead.items())
    if summary:
        lines.append(f"\nVersus the peers (target: ahead on every row): Crossbar is {summary}. "
                     "A factor is Crossbar's advantage computed within each round (>1: ahead).")
    print("\n".join(lines), flush=True)
    return lines


# ---------------------------------------------------------------- stamp


def commit():
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.split("\n")
    dirty = [line[3:] for line in dirty if line.strip()]
    return head, dirty


def nginx_version():
    return subprocess.run([shutil.which("nginx") or "nginx", "-v"], capture_output=True,
                          text=True).stderr.strip().removeprefix("nginx version: ")


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return (f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, {rustc}; "
            "the load generator, the upstream and the gateway share these cores")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured window")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load first")
    parser.add_argument("--rounds", type=int, default=3, help="repeats of each cell, order rotated")
    parser.add_argument("--levels", default="1,16,64,256")
    parser.add_argument("--targets", default=",".join(ALL_TARGETS))
    parser.add_argument("--no-peers", action="store_true", help="without LiteLLM and Portkey")
    parser.add_argument("--litellm-workers", type=int, default=1,
                        help="LiteLLM's worker processes; more than one puts uvicorn's supervisor "
                             "in front, which on a loaded 2-core machine kills workers that take "
                             "over 5 s to import and never starts")
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop rate")
    parser.add_argument("--openloop-duration", type=float, default=10.0)
    parser.add_argument("--soak", type=float, default=0, help="soak seconds (600 for the full run)")
    parser.add_argument("--soak-rate", type=float, default=500.0)
    parser.add_argument("--open-streams", type=int, default=1000)
    parser.add_argument("--quick", action="store_true",
                        help="development: c=1 and 64, 2 s windows, table and targets only")
    parser.add_argument("--sections", default="table,openloop,sizes,long,open,soak",
                        help="which parts to run (comma-separated)")
    args = parser.parse_args()
    command = shlex.join([os.environ.get("BENCH_ENTRY", "bench/run.py")] + sys.argv[1:])
    if args.quick:
        args.levels, args.duration, args.warmup = "1,64", 2.0, 0.5
    names = [n for n in args.targets.split(",") if n]
    if args.no_peers:
        names = [n for n in names if n not in ("litellm", "portkey")]
    if names[0] != "direct":
        sys.exit("--targets must start with direct (every overhead is measured against it)")

    head, dirty = commit()
    stamp = datetime.datetime.now(datetime.timezone.utc)
    work = tempfile.mkdtemp(prefix="crossbar-bench-")
    sim, sim_addr = start_sim(work, "sim")
    targets, missing, notes = [], {}, []
    for name in names:
        target, why = start_target(name, work, sim_addr, args)
        if target is None:
            missing[name] = why
            print(f"{name}: {why}", file=sys.stderr)
        else:
            targets.append(target)
    names = [t.name for t in targets]
    by_name = {t.name: t for t in targets}

    # Portkey 1.15.x on Node 20 may fail every stream (`TypeError: immutable`): probe once, and
    # report its non-streamed rows (its streamed ones marked) if so.
    streaming_broken = False
    if "portkey" in by_name:
        stream_body = write(f"{work}/probe.json", chat_body(17, True))
        probe = loadgen(by_name["portkey"], stream_body, 1, duration=1.0, stream=True)
        if probe["requests"] == 0:
            streaming_broken = True
            why = probe.get("first_error") or ""
            if "immutable" in by_name["portkey"].log_text():
                why = "TypeError: immutable in its log; " + why
            notes.append(f"portkey fails to stream on this Node ({why[:200]}); its streamed rows "
                         "are left out and its non-streamed rows reported")
    stream_targets = [t for t in targets if not (t.name == "portkey" and streaming_broken)]

    versions = [f"{t.name}: {t.version}" for t in targets if t.version]
    lines = [f"# Crossbar benchmark, {stamp:%Y-%m-%d %H:%M} UTC\n",
             f"- Commit: `{head}`" + (f", **dirty** ({len(dirty)} files changed: "
                                       f"{', '.join(dirty[:8])}{'…' if len(dirty) > 8 else ''})"
                                       if dirty else ", clean tree"),
             f"- Command: `{command}`",
             f"- Machine: {machine()}.",
             f"- Targets: {'; '.join(versions)}." + (" Missing: " + "; ".join(
                 f"{k}: {v}" for k, v in missing.items()) + "." if missing else ""),
             f"- Method: the OpenAI simulator with zero latency and recording off is the upstream "
             f"for every target; each cell is {args.rounds} windows of {args.duration:g} s (after "
             f"{args.warmup:g} s unmeasured), the order of targets rotated every round; figures are "
             "median (min–max) over rounds, and ratios and added latencies are paired within a "
             "round. Crossbar has its SQLite usage store on. CPU is each process tree's; requests "
             "still in flight at a window's end are counted as incomplete.",
             ]
    print("\n".join(lines), flush=True)
    raw = {"commit": head, "dirty": dirty, "command": command, "stamp": stamp.isoformat(),
           "versions": versions, "missing": missing}
    sections = {"table"} if args.quick else set(args.sections.split(","))
    body = []
    if "table" in sections:
        # Streamed rows leave out a Portkey that cannot stream.
        body += side_by_side_split(targets, stream_targets, sim, work, args, raw, notes)
    if "openloop" in sections:
        body += open_loop(targets, sim, work, args, raw)
    if "sizes" in sections and "crossbar" in by_name:
        body += sizes(targets[0], by_name["crossbar"], sim, work, args, raw)
    if "long" in sections and "crossbar" in by_name:
        body += long_streams(by_name["crossbar"], work, raw)
    if "open" in sections:
        body += open_streams(names, work, args, raw, notes,
                             {"portkey": "fails to stream on this Node"} if streaming_broken else {})
    if "soak" in sections and args.soak > 0 and "crossbar" in by_name:
        body += soak(by_name["crossbar"], work, args, raw)
    lines += targets_table(names, raw, args, streaming_broken)
    lines += body
    if notes:
        lines.append("\n### Notes\n")
        lines += [f"- {n}" for n in notes]
        print("\n".join(f"- {n}" for n in notes), flush=True)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    base = os.path.join(ROOT, "bench", "results", f"{stamp:%Y-%m-%d-%H%M}-{head[:8]}")
    write(base + ".md", "\n".join(lines) + "\n")
    write(base + ".json", json.dumps(raw, indent=1) + "\n")
    print(f"\nwritten to {os.path.relpath(base, ROOT)}.md (raw figures: .json)")


def side_by_side_split(targets, stream_targets, sim, work, args, raw, notes):
    if len(stream_targets) == len(targets):
        return side_by_side(targets, sim, work, args, raw, notes)
    # Measure non-streamed with every target, streamed without the one that cannot stream.
    lines = side_by_side(targets, sim, work, args, raw, notes, (False,))
    lines += side_by_side(stream_targets, sim, work, args, raw, notes, (True,))
    return lines


if __name__ == "__main__":
    try:
        main()
    finally:
        for proc in PROCS:
            if proc.poll() is None:
                stop(proc)
