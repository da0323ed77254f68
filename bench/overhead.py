"""Sequential keep-alive latency: direct to the simulator vs through the gateway (same process
load generator, same request), interleaved in rounds so drift affects both equally."""
import http.client, json, statistics, sys, time

def run(host, port, path, body, n):
    conn = http.client.HTTPConnection(host, port)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("POST", path, body=body, headers={"content-type": "application/json"})
        r = conn.getresponse(); r.read()
        assert r.status == 200, r.status
        times.append(time.perf_counter() - t)
    return times

def parse(url):
    host, port = url.split("//")[1].split("/")[0].split(":")
    return host, int(port)

sim, gw, stream = sys.argv[1], sys.argv[2], sys.argv[3] == "stream"
req = {"model": "m", "messages": [{"role": "user", "content": "Tell me about lighthouses in a few words"}]}
if stream:
    req["stream"] = True
direct_body = json.dumps({**req, "model": "gpt-4o"})
gw_body = json.dumps(req)
d, g = [], []
for _ in range(5):
    d += run(*parse(sim), "/v1/chat/completions", direct_body, 300)
    g += run(*parse(gw), "/v1/chat/completions", gw_body, 300)
q = lambda xs, p: sorted(xs)[int(len(xs) * p) - 1] * 1000
print(f"{'stream' if stream else 'non-stream'}: direct p50 {q(d,.5):.3f} ms p99 {q(d,.99):.3f} ms | via gateway p50 {q(g,.5):.3f} ms p99 {q(g,.99):.3f} ms | overhead p50 {q(g,.5)-q(d,.5):.3f} ms p99 {q(g,.99)-q(d,.99):.3f} ms")
