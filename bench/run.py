#!/usr/bin/env python3
"""Side-by-side benchmark: direct -> upstream, nginx -> upstream, Crossbar -> upstream (and
LiteLLM -> upstream with --with-litellm), in one run against the same zero-latency simulator.

Called by bench/run, which builds the release binaries and installs nginx first. Prints the
tables and writes them to bench/results/. Figures are measured, never assumed: each gateway's
overhead is its latency minus direct's in the same run, its CPU per request comes from
/proc/<pid>/stat over the measured window, RSS from /proc/<pid>/status.
"""

import argparse
import base64
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "crossbar")
LOADGEN = os.path.join(ROOT, "target", "release", "crossbar-loadgen")
TICK = os.sysconf("SC_CLK_TCK")
PROCS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(args, **kw):
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, **kw)
    PROCS.append(proc)
    return proc


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


def wait_port(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listens on {port}")


def family(pid):
    """The process and its descendants (nginx workers, LiteLLM's workers)."""
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


def loadgen(url, body_path, concurrency=1, duration=5.0, warmup=0.0, rate=None):
    args = [LOADGEN, "--url", url, "--body", body_path, "--concurrency", str(concurrency),
            "--duration", str(duration), "--warmup", str(warmup)]
    if rate:
        args += ["--rate", str(rate)]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


class Target:
    def __init__(self, name, url, pid):
        self.name, self.url, self.pid = name, url, pid


def measure(target, sim_pid, body_path, concurrency, duration):
    """One measured run, after a short unmeasured one that warms connections and caches."""
    loadgen(target.url, body_path, concurrency, duration=1.0)
    before = (cpu_seconds(target.pid) if target.pid else 0, cpu_seconds(sim_pid))
    result = loadgen(target.url, body_path, concurrency, duration)
    after = (cpu_seconds(target.pid) if target.pid else 0, cpu_seconds(sim_pid))
    n = max(result["requests"], 1)
    result["cpu_ms"] = (after[0] - before[0]) * 1000 / n if target.pid else None
    result["upstream_cpu_ms"] = (after[1] - before[1]) * 1000 / n
    result["rss_mb"] = rss_mb(target.pid) if target.pid else None
    return result


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


def fmt(value, digits=2):
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def start_nginx(work, sim_addr):
    port = free_port()
    conf = f"""
worker_processes auto;
error_log {work}/nginx-error.log warn;
pid {work}/nginx.pid;
events {{ worker_connections 4096; }}
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
            client_max_body_size 64m;
        }}
    }}
}}
"""
    path = write(f"{work}/nginx.conf", conf)
    proc = spawn([shutil.which("nginx") or "/usr/sbin/nginx", "-c", path, "-p", work,
                  "-g", "daemon off;"])
    wait_port(port)
    return Target("nginx", f"http://127.0.0.1:{port}/v1/chat/completions", proc.pid)


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
    return Target("crossbar", f"http://{addr}/v1/chat/completions", proc.pid)


def start_litellm(work, sim_addr):
    venv = os.path.join(ROOT, "bench", ".litellm-venv")
    if not os.path.exists(os.path.join(venv, "bin", "litellm")):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([f"{venv}/bin/pip", "install", "--quiet", "litellm[proxy]==1.108.14"], check=True)
    conf = f"""
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: http://{sim_addr}/v1
      api_key: sk-bench
"""
    path = write(f"{work}/litellm.yaml", conf)
    port = free_port()
    proc = spawn([f"{venv}/bin/litellm", "--config", path, "--port", str(port), "--host", "127.0.0.1"],
                 env={**os.environ, "LITELLM_LOG": "ERROR"})
    wait_port(port, timeout=180)
    return Target("litellm", f"http://127.0.0.1:{port}/v1/chat/completions", proc.pid)


def side_by_side(targets, sim_pid, work, levels, duration):
    lines = []
    bodies = {False: write(f"{work}/small.json", chat_body(17, False)),
              True: write(f"{work}/stream.json", chat_body(17, True))}
    for stream in (False, True):
        lines.append(f"\n### {'Streaming (~20 chunks)' if stream else 'Non-streaming'}\n")
        lines.append("| conc | target | req/s | p50 ms | p90 ms | p99 ms | TTFB p50 | TTFB p99 | "
                     "CPU ms/req | upstream CPU ms/req | RSS MB | +p50 vs direct | +p99 vs direct | "
                     "+TTFB p50 | req/s ÷ direct | req/s ÷ nginx |")
        lines.append("|" + "---|" * 16)
        for c in levels:
            start = len(lines)
            results = {t.name: measure(t, sim_pid, bodies[stream], c, duration) for t in targets}
            direct, nginx = results["direct"], results.get("nginx")
            for t in targets:
                r = results[t.name]
                gateway = t.name != "direct"
                lines.append("| " + " | ".join([
                    str(c), t.name, fmt(r["rps"], 0), fmt(r["p50_ms"], 3), fmt(r["p90_ms"], 3),
                    fmt(r["p99_ms"], 3), fmt(r["ttfb_p50_ms"], 3), fmt(r["ttfb_p99_ms"], 3),
                    fmt(r["cpu_ms"], 3), fmt(r["upstream_cpu_ms"], 3), fmt(r["rss_mb"], 1),
                    fmt(r["p50_ms"] - direct["p50_ms"], 3) if gateway else "-",
                    fmt(r["p99_ms"] - direct["p99_ms"], 3) if gateway else "-",
                    fmt(r["ttfb_p50_ms"] - direct["ttfb_p50_ms"], 3) if gateway else "-",
                    fmt(r["rps"] / max(direct["rps"], 1e-9)),
                    fmt(r["rps"] / max(nginx["rps"], 1e-9)) if nginx else "-",
                ]) + " |")
                if r["errors"]:
                    lines.append(f"| | ({t.name}: {r['errors']} errors) |" + " |" * 14)
            print("\n".join(lines[start:]), flush=True)
    return lines


def open_loop(targets, sim_pid, work, rate, duration):
    body = write(f"{work}/small.json", chat_body(17, False))
    lines = [f"\n### Open loop at {rate} req/s (non-streaming, latency from each request's due time)\n",
             "| target | done | errors | p50 ms | p99 ms | +p50 vs direct | +p99 vs direct |",
             "|---|---|---|---|---|---|---|"]
    results = {}
    for t in targets:
        loadgen(t.url, body, 1, duration=1.0)
        results[t.name] = loadgen(t.url, body, duration=duration, rate=rate)
    direct = results["direct"]
    for t in targets:
        r = results[t.name]
        gateway = t.name != "direct"
        lines.append(f"| {t.name} | {r['requests']} | {r['errors']} | {fmt(r['p50_ms'], 3)} | "
                     f"{fmt(r['p99_ms'], 3)} | "
                     f"{fmt(r['p50_ms'] - direct['p50_ms'], 3) if gateway else '-'} | "
                     f"{fmt(r['p99_ms'] - direct['p99_ms'], 3) if gateway else '-'} |")
    print("\n".join(lines), flush=True)
    return lines


def sizes(direct, crossbar, work, duration):
    """Overhead as the request grows: 1 KB, 100 KB, and 2 MB carrying a base64 image."""
    png = base64.b64encode(os.urandom(1_500_000)).decode()
    cases = [("1 KB", chat_body(150, False)), ("100 KB", chat_body(15_000, False)),
             ("2 MB image", chat_body(20, False, [{"type": "image_url", "image_url": {
                 "url": f"data:image/png;base64,{png}"}}]))]
    lines = ["\n### Request size (concurrency 1, non-streaming)\n",
             "| body | bytes | direct p50 | crossbar p50 | +p50 | +p99 | crossbar CPU ms/req |",
             "|---|---|---|---|---|---|---|"]
    for label, body in cases:
        path = write(f"{work}/size.json", body)
        loadgen(direct.url, path, 1, duration=1.0)
        d = loadgen(direct.url, path, 1, duration)
        loadgen(crossbar.url, path, 1, duration=1.0)
        before = cpu_seconds(crossbar.pid)
        x = loadgen(crossbar.url, path, 1, duration)
        cpu = (cpu_seconds(crossbar.pid) - before) * 1000 / max(x["requests"], 1)
        lines.append(f"| {label} | {len(body)} | {fmt(d['p50_ms'], 3)} | {fmt(x['p50_ms'], 3)} | "
                     f"{fmt(x['p50_ms'] - d['p50_ms'], 3)} | {fmt(x['p99_ms'] - d['p99_ms'], 3)} | "
                     f"{fmt(cpu, 3)} |")
    print("\n".join(lines), flush=True)
    return lines


def long_streams(crossbar, work):
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
    peak = before
    proc = subprocess.Popen([LOADGEN, "--url", crossbar.url, "--body", path, "--concurrency", "4",
                             "--duration", "10", "--warmup", "0"], stdout=subprocess.PIPE, text=True)
    while proc.poll() is None:
        peak = max(peak, rss_mb(crossbar.pid))
        time.sleep(0.2)
    result = json.loads(proc.stdout.read())
    after = rss_mb(crossbar.pid)
    lines = ["\n### 10,000-chunk streams (4 at a time for 10 s)\n",
             "| streams done | errors | p50 s per stream | RSS before MB | peak MB | after MB |",
             "|---|---|---|---|---|---|",
             f"| {result['requests']} | {result['errors']} | {fmt(result['p50_ms'] / 1000, 3)} | "
             f"{fmt(before, 1)} | {fmt(peak, 1)} | {fmt(after, 1)} |"]
    print("\n".join(lines), flush=True)
    return lines


def open_streams(work, n):
    """RSS with `n` streams open at once, against a simulator that streams slowly."""
    slow = write(f"{work}/slow-sim.toml", "ttft_ms = 0\ntokens_per_s = 4.0\n")
    sim = spawn([BIN, "sim", "--dialect", "openai", "--listen", "127.0.0.1:0", "--config", slow])
    addr = first_line(sim).split()[0]
    gateway = start_crossbar(work, addr, name="crossbar-streams")
    idle = rss_mb(gateway.pid)
    path = write(f"{work}/open.json", chat_body(30, True))
    # Each worker's first stream ends within the run; its second starts inside it and is
    # waited for, so `n` streams stay open for most of the run.
    proc = subprocess.Popen([LOADGEN, "--url", gateway.url, "--body", path, "--concurrency", str(n),
                             "--duration", "9", "--warmup", "0"], stdout=subprocess.PIPE, text=True)
    peak = idle
    while proc.poll() is None:
        peak = max(peak, rss_mb(gateway.pid))
        time.sleep(0.2)
    result = json.loads(proc.stdout.read())
    lines = [f"\n### {n} concurrent open streams (each ~8 s long)\n",
             "| streams completed | errors | RSS idle MB | RSS peak MB |", "|---|---|---|---|",
             f"| {result['requests']} | {result['errors']} | {fmt(idle, 1)} | {fmt(peak, 1)} |"]
    print("\n".join(lines), flush=True)
    for started in PROCS:
        if started.pid in (sim.pid, gateway.pid):
            started.terminate()
    return lines


def soak(crossbar, work, seconds, rate):
    body = write(f"{work}/small.json", chat_body(17, False))
    proc = subprocess.Popen([LOADGEN, "--url", crossbar.url, "--body", body, "--rate", str(rate),
                             "--duration", str(seconds), "--warmup", "0"], stdout=subprocess.PIPE, text=True)
    samples = []
    start = time.time()
    while proc.poll() is None:
        samples.append((time.time() - start, rss_mb(crossbar.pid)))
        time.sleep(5)
    result = json.loads(proc.stdout.read())
    warm = [rss for t, rss in samples if t >= min(60, seconds / 5)]
    base = warm[0] if warm else 0
    drift = max(abs(r - base) for r in warm) / base * 100 if base else 0
    lines = [f"\n### Soak: {seconds} s at {rate} req/s\n",
             "| requests | errors | p99 ms | RSS after warm-up MB | RSS end MB | max drift |",
             "|---|---|---|---|---|---|",
             f"| {result['requests']} | {result['errors']} | {fmt(result['p99_ms'], 3)} | "
             f"{fmt(base, 1)} | {fmt(samples[-1][1] if samples else 0, 1)} | {fmt(drift, 1)}% |"]
    print("\n".join(lines), flush=True)
    return lines


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
    nginx = subprocess.run([shutil.which("nginx") or "nginx", "-v"], capture_output=True, text=True).stderr.strip()
    return (f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, {rustc}, "
            f"{nginx}; the load generator, the upstream and the gateway share these cores")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured run")
    parser.add_argument("--levels", default="1,16,64,256")
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop rate")
    parser.add_argument("--with-litellm", action="store_true")
    parser.add_argument("--soak", type=float, default=0, help="soak seconds (600 for the full run)")
    parser.add_argument("--soak-rate", type=float, default=500.0)
    parser.add_argument("--open-streams", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="side-by-side table only")
    parser.add_argument("--sections", default="table,openloop,sizes,long,open,soak",
                        help="which parts to run (comma-separated)")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="crossbar-bench-")
    sim = spawn([BIN, "sim", "--dialect", "openai", "--listen", "127.0.0.1:0"])
    sim_addr = first_line(sim).split()[0]
    targets = [Target("direct", f"http://{sim_addr}/v1/chat/completions", None),
               start_nginx(work, sim_addr), start_crossbar(work, sim_addr)]
    if args.with_litellm:
        targets.append(start_litellm(work, sim_addr))
    crossbar = next(t for t in targets if t.name == "crossbar")

    stamp = datetime.datetime.now(datetime.timezone.utc)
    lines = [f"# Crossbar benchmark, {stamp:%Y-%m-%d %H:%M} UTC\n", f"Machine: {machine()}.\n",
             f"Upstream: the OpenAI simulator with zero latency; {args.duration:g} s per run after a "
             "1 s warm-up; Crossbar with its default SQLite usage store on."]
    levels = [int(c) for c in args.levels.split(",")]
    sections = {"table"} if args.quick else set(args.sections.split(","))
    if "table" in sections:
        lines += side_by_side(targets, sim.pid, work, levels, args.duration)
    if "openloop" in sections:
        lines += open_loop(targets, sim.pid, work, args.rate, 10.0)
    if "sizes" in sections:
        lines += sizes(targets[0], crossbar, work, args.duration)
    if "long" in sections:
        lines += long_streams(crossbar, work)
    if "open" in sections:
        lines += open_streams(work, args.open_streams)
    if "soak" in sections and args.soak > 0:
        lines += soak(crossbar, work, args.soak, args.soak_rate)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    out = os.path.join(ROOT, "bench", "results", f"{stamp:%Y-%m-%d-%H%M}.md")
    write(out, "\n".join(lines) + "\n")
    print(f"\nwritten to {os.path.relpath(out, ROOT)}")


if __name__ == "__main__":
    try:
        main()
    finally:
        for proc in PROCS:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in PROCS:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
