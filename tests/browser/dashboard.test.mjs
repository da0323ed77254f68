// The dashboard in a real browser: starts target/debug/crossbar on a free loopback port with
// simulated providers (one always failing), sends known traffic through two virtual keys,
// then drives Debian's chromium headless with playwright-core and checks that every page shows
// the numbers that traffic implies. Screenshots of each page go to tests/browser/output/.
//
//   CROSSBAR_BIN   the binary (default: target/debug/crossbar)
//   CHROMIUM       the browser (default: /usr/bin/chromium)

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, createWriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const output = join(here, "output");
const binary = process.env.CROSSBAR_BIN || join(root, "target", "debug", "crossbar");
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";
const ADMIN = "dashboard-admin-token-0123456789";

// USD per million tokens, as in the configuration below.
const PRICES = {
  "chat@sim-openai": [2.5, 10],
  "chat@sim-azure": [2.5, 10],
  "claude@sim-bedrock": [3, 15],
  "flaky@sim-broken": [1, 4],
  "flaky@sim-azure": [2.5, 10],
};

function config(dir) {
  return `
[store]
url = "${join(dir, "crossbar.db")}"

[admin]
token = "${ADMIN}"

[[providers]]
name = "sim-openai"
kind = "sim"
dialect = "openai"
cloud = "openai"
region = "us-east"
sim = { ttft_ms = 25, tokens_per_s = 4000 }

[[providers]]
name = "sim-azure"
kind = "sim"
dialect = "azure"
cloud = "azure"
region = "eastus"
sim = { ttft_ms = 60, tokens_per_s = 3000 }

[[providers]]
name = "sim-bedrock"
kind = "sim"
dialect = "bedrock"
cloud = "aws"
region = "us-east-1"
api_key = "bedrock-api-key-123"
sim = { api_key = "bedrock-api-key-123", ttft_ms = 45, tokens_per_s = 3000 }

[[providers]]
name = "sim-broken"
kind = "sim"
dialect = "openai"
cloud = "gcp"
region = "europe-west4"
sim = { error_rate = 1.0, error_status = 503 }

[[models]]
name = "chat"
deployments = [
  { provider = "sim-openai", target = "gpt-4o", price = { input = 2.5, output = 10.0 } },
  { provider = "sim-azure", target = "gpt4o-prod", price = { input = 2.5, output = 10.0 } },
]

[[models]]
name = "claude"
deployments = [{ provider = "sim-bedrock", target = "anthropic.claude-sonnet-4", price = { input = 3.0, output = 15.0 } }]

[[models]]
name = "flaky"
deployments = [
  { provider = "sim-broken", target = "gpt-4o", price = { input = 1.0, output = 4.0 } },
  { provider = "sim-azure", target = "gpt4o-prod", price = { input = 2.5, output = 10.0 } },
]

[routes.default]
objective = "order"
`;
}

/** Picodollars as the gateway prints them: exact decimals, at least two. */
function formatUsd(pico) {
  const whole = pico / 1_000_000_000_000n;
  const fraction = (pico % 1_000_000_000_000n).toString().padStart(12, "0").replace(/0+$/, "");
  return `${whole}.${fraction.padEnd(2, "0")}`;
}

/** Picodollars for a usage at a deployment's price, computed here, not by the gateway. */
function cost(deployment, usage) {
  const [input, output] = PRICES[deployment];
  const perToken = (usd) => BigInt(Math.round(usd * 1_000_000));
  return BigInt(usage.prompt_tokens) * perToken(input) + BigInt(usage.completion_tokens) * perToken(output);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let gateway;
let url;
let work;
let context;
const sent = { requests: 0, failed: 0, byProvider: {}, byKey: {}, flakyIds: [], flakyUsage: [] };

async function call(key, body, provider) {
  const headers = { "content-type": "application/json", authorization: `Bearer ${key.secret}` };
  if (provider) headers["x-crossbar-provider"] = provider;
  const response = await fetch(`${url}/v1/chat/completions`, { method: "POST", headers, body: JSON.stringify(body) });
  const answer = await response.json();
  sent.requests += 1;
  if (!response.ok) {
    sent.failed += 1;
    return { response, answer };
  }
  const deployment = response.headers.get("x-crossbar-deployment");
  const providerName = deployment.split("@")[1];
  sent.byProvider[providerName] = (sent.byProvider[providerName] || 0) + 1;
  sent.byKey[key.name] = (sent.byKey[key.name] || 0n) + cost(deployment, answer.usage);
  return { response, answer, deployment };
}

async function createKey(spec) {
  const response = await fetch(`${url}/admin/keys`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${ADMIN}` },
    body: JSON.stringify(spec),
  });
  assert.equal(response.status, 201);
  const created = await response.json();
  return { name: spec.name, id: created.id, secret: created.key };
}

before(async () => {
  rmSync(output, { recursive: true, force: true });
  mkdirSync(output, { recursive: true });
  work = mkdtempSync(join(tmpdir(), "crossbar-browser-"));
  const configPath = join(work, "crossbar.toml");
  writeFileSync(configPath, config(work));
  gateway = spawn(binary, ["serve", "--config", configPath, "--listen", "127.0.0.1:0"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "warn" },
  });
  gateway.stderr.pipe(createWriteStream(join(output, "gateway.log")));
  const lines = createInterface({ input: gateway.stdout });
  url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the gateway did not start in 30 s")), 30_000);
    gateway.once("exit", (code) => reject(new Error(`the gateway exited with ${code}; see output/gateway.log`)));
    lines.once("line", (line) => {
      clearTimeout(timer);
      const prefix = "crossbar listening on ";
      if (!line.startsWith(prefix)) reject(new Error(`unexpected first line: ${line}`));
      else resolve(line.slice(prefix.length).trim());
    });
  });

  context = await chromium.launchPersistentContext(join(work, "profile"), {
    executablePath: browserPath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"],
    // The dashboard asks for the admin token with HTTP Basic auth once keys exist.
    httpCredentials: { username: "ops", password: ADMIN },
    viewport: { width: 1440, height: 1000 },
    deviceScaleFactor: 1,
  });
});

after(async () => {
  if (context) await context.close();
  if (gateway && gateway.exitCode == null) {
    gateway.kill("SIGTERM");
    await new Promise((resolve) => gateway.once("exit", resolve));
  }
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Text of the first element matching `selector`, once `predicate` holds (pages poll). */
async function waitText(page, selector, predicate, what) {
  const deadline = Date.now() + 10_000;
  let last = null;
  while (Date.now() < deadline) {
    last = await page.locator(selector).first().textContent({ timeout: 1_000 }).catch(() => null);
    if (last != null && predicate(last)) return last;
    await sleep(200);
  }
  assert.fail(`${what}: \`${selector}\` showed ${JSON.stringify(last)}`);
}

const has = (expected) => (text) => text.includes(expected);

const AGENT = `
name = "otter-counter"
instructions = "You count otters."
max_steps = 4

[models]
default = "chat"

[tools]
builtin = ["calculator", "now"]
`;

// The simulated model follows these lines: two tools in step 1, one in step 2, then an answer.
const AGENT_TASK = [
  "Count the otters.",
  'sim-step 1: calculator {"expression": "2 + 3"}',
  "sim-step 1: now {}",
  'sim-step 2: calculator {"expression": "5 * 2"}',
].join("\n");

/** Runs `crossbar agent run` through the gateway, journaling to its store; its JSON events. */
async function agentRun(key) {
  const spec = join(work, "agent.toml");
  writeFileSync(spec, AGENT);
  const child = spawn(binary, ["agent", "run", spec, AGENT_TASK, "--gateway", url, "--key", key.secret,
    "--store", join(work, "crossbar.db"), "--json"], { stdio: ["ignore", "pipe", "pipe"], cwd: work });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => { out += d; });
  child.stderr.on("data", (d) => { err += d; });
  const code = await new Promise((resolve) => child.once("exit", resolve));
  assert.equal(code, 0, `crossbar agent run failed: ${err}`);
  return out.trim().split("\n").map((line) => JSON.parse(line));
}

test("the dashboard shows the traffic, its cost and the failing deployment", { timeout: 180_000 }, async () => {
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));

  // Before any key exists the gateway is open to this machine; keys close it (and the
  // dashboard then needs the admin token, which the browser context sends).
  const teamA = await createKey({ name: "team-a", budget_usd_day: 0.02, rpm: 600 });
  const teamB = await createKey({ name: "team-b", budget_usd_month: 1.0 });
  const anonymous = await fetch(`${url}/ui`);
  assert.equal(anonymous.status, 401, "the dashboard is closed to callers without the admin token");

  const ask = (model, max_tokens = 40) => ({ model, max_tokens, messages: [{ role: "user", content: "Where do otters sleep?" }] });
  // Spread over a few seconds so the charts have more than one bucket.
  for (let i = 0; i < 5; i++) { await call(teamA, ask("chat"), "sim-openai"); await sleep(250); }
  for (let i = 0; i < 3; i++) { await call(teamA, ask("chat"), "sim-azure"); await sleep(250); }
  for (let i = 0; i < 2; i++) { await call(teamB, ask("claude")); await sleep(250); }
  // The broken deployment is tried first and fails over to azure.
  for (let i = 0; i < 2; i++) {
    const { response, answer, deployment } = await call(teamB, ask("flaky"));
    assert.equal(deployment, "flaky@sim-azure");
    assert.equal(response.headers.get("x-crossbar-attempts"), "2");
    sent.flakyIds.push(response.headers.get("x-request-id"));
    sent.flakyUsage.push(answer.usage);
    await sleep(250);
  }
  assert.equal(sent.failed, 0);

  // Deployments: watch the broken deployment's breaker open while traffic pinned to it fails.
  await page.goto(`${url}/ui#/deployments`);
  const brokenRow = 'tr[data-deployment="flaky@sim-broken"]';
  await waitText(page, `${brokenRow} [data-field="breaker"]`, has("closed"), "breaker before");
  const started = Date.now();
  for (let i = 0; i < 6; i++) {
    const { response } = await call(teamB, ask("flaky"), "sim-broken");
    assert.ok(response.status >= 500, `pinned to the broken deployment: ${response.status}`);
  }
  await waitText(page, `${brokenRow} [data-field="breaker"]`, has("open"), "breaker after failures");
  await waitText(page, `${brokenRow} [data-field="health"]`, has("down"), "health after failures");
  const shownAfter = Date.now() - started;
  assert.ok(shownAfter < 8_000, `the failing deployment showed after ${shownAfter} ms`);
  await waitText(page, 'tr[data-deployment="chat@sim-openai"] [data-field="health"]', has("healthy"), "a healthy deployment");
  await waitText(page, 'tr[data-deployment="chat@sim-openai"] [data-field="share"]', has("5 requests"), "share of traffic");
  await page.screenshot({ path: join(output, "deployments.png"), fullPage: true });

  const total = sent.requests;
  assert.equal(total, 18);
  const spend = Object.values(sent.byKey).reduce((a, b) => a + b, 0n);

  // Overview: totals, error rate, spend, and the split by provider and cloud.
  await page.goto(`${url}/ui#/overview`);
  await page.locator('#controls button[data-value="5m"]').click();
  await waitText(page, '[data-kpi="rps"] .sub', has(`${total} in window`), "requests in window");
  await waitText(page, '[data-kpi="error-rate"] .value', has(`${((sent.failed / total) * 100).toFixed(1)}%`), "error rate");
  await waitText(page, '[data-kpi="error-rate"] .sub', has(`${sent.failed} failed`), "failed requests");
  await waitText(page, '[data-kpi="spend"] .value', (t) => t === `$${formatUsd(spend)}`, "spend");
  await waitText(page, '[data-kpi="latency"] .value', (t) => /^\d+ ms$/.test(t), "latency p50");
  await waitText(page, '[data-kpi="ttft"] .value', (t) => /^\d+ ms$/.test(t), "ttft p50");
  for (const [provider, count] of Object.entries(sent.byProvider)) {
    await waitText(page, `[data-table="provider"] tr[data-group="${provider}"] [data-field="requests"]`, (t) => t === String(count), `requests on ${provider}`);
  }
  await waitText(page, '[data-table="cloud"] tr[data-group="azure"] [data-field="requests"]', (t) => t === "5", "requests on azure");
  await waitText(page, '[data-table="cloud"] tr[data-group="aws"] [data-field="requests"]', (t) => t === "2", "requests on aws");
  // Charts are drawn: one SVG per chart, the stacked series as filled paths.
  assert.equal(await page.locator(".grid2 .card svg").count(), 6);
  assert.ok(await page.locator(".grid2 .card svg path").count() > 10);
  await page.screenshot({ path: join(output, "overview.png"), fullPage: true });
  // The last minute in one-second buckets: the traffic above spread over its seconds.
  await page.locator('#controls button[data-value="1m"]').click();
  await page.waitForFunction(() => document.querySelector('#controls button[data-value="1m"]').classList.contains("on"));
  await sleep(2 * 1500);
  await page.screenshot({ path: join(output, "overview-1m.png"), fullPage: true });
  await page.locator('#controls button[data-value="5m"]').click();
  await page.locator('#controls button[data-value="cloud"]').click();
  await page.waitForFunction(() => document.querySelector(".grid2 h2").textContent.includes("by cloud"));
  await page.screenshot({ path: join(output, "overview-by-cloud.png"), fullPage: true });

  // Requests: filters, then one failover with its attempts on the timeline.
  await page.goto(`${url}/ui#/requests`);
  await page.waitForSelector('[data-table="requests"]');
  assert.equal(await page.locator('[data-table="requests"] tbody tr').count(), total);
  await page.fill('input[name="model"]', "flaky");
  await page.selectOption('select[name="status"]', "error");
  await page.waitForFunction(() => document.querySelectorAll('[data-table="requests"] tbody tr').length === 6);
  for (const status of await page.locator('[data-table="requests"] [data-field="status"]').allTextContents()) {
    assert.ok(Number.parseInt(status, 10) >= 500, status);
  }
  await page.screenshot({ path: join(output, "requests.png"), fullPage: true });
  await page.fill('input[name="model"]', "");
  await page.selectOption('select[name="status"]', "");
  await page.fill('input[name="deployment"]', "flaky@sim-broken");
  await page.click('form.filters button[type="submit"]');
  await page.waitForSelector(`[data-request="${sent.flakyIds[0]}"]`);
  await page.click(`[data-request="${sent.flakyIds[0]}"]`);
  await page.waitForSelector('[data-table="attempts"]');
  const outcomes = await page.locator('[data-table="attempts"] [data-field="outcome"]').allTextContents();
  assert.deepEqual(outcomes, ["error", "ok"]);
  assert.deepEqual(await page.locator("#timeline rect").evaluateAll((rects) => rects.map((r) => r.dataset.outcome)), ["error", "ok"]);
  const usage = sent.flakyUsage[0];
  await waitText(page, 'dd[data-field="cost"]', (t) => t === `$${formatUsd(cost("flaky@sim-azure", usage))}`, "request cost");
  await waitText(page, 'dd[data-field="input-tokens"]', (t) => t === String(usage.prompt_tokens), "input tokens");
  await waitText(page, 'dd[data-field="output-tokens"]', (t) => t === String(usage.completion_tokens), "output tokens");
  await waitText(page, 'dd[data-field="deployment"]', has("flaky@sim-azure"), "answered by");
  await page.screenshot({ path: join(output, "request-detail.png"), fullPage: true });

  // Keys and budgets: each key's spend against its budget.
  await page.goto(`${url}/ui#/keys`);
  await waitText(page, `tr[data-key="${teamA.id}"] [data-field="day"]`, has(`$${formatUsd(sent.byKey["team-a"])} of $0.02`), "team-a today");
  // Of the $0.02 budget, rounded to 0.1% as the API does.
  const used = Math.round(Number(sent.byKey["team-a"]) / 20_000_000) / 1000;
  await waitText(page, `tr[data-key="${teamA.id}"] [data-field="day"]`, has(`${(used * 100).toFixed(1)}% used`), "team-a share of budget");
  await waitText(page, `tr[data-key="${teamB.id}"] [data-field="month"]`, has(`$${formatUsd(sent.byKey["team-b"])} of $1`), "team-b this month");
  await waitText(page, `tr[data-key="${teamA.id}"] [data-field="requests"]`, (t) => t === "8", "team-a requests");
  await waitText(page, `tr[data-key="${teamB.id}"] [data-field="requests"]`, (t) => t === "10", "team-b requests");
  await page.screenshot({ path: join(output, "keys.png"), fullPage: true });

  // What-if: the failover traffic re-priced on the broken (cheaper) deployment.
  await page.goto(`${url}/ui#/whatif`);
  const onBroken = sent.flakyUsage.reduce((sum, u) => sum + cost("flaky@sim-broken", u), 0n);
  await waitText(page, 'tr[data-whatif="flaky@sim-broken"] [data-field="cost"]', (t) => t === `$${formatUsd(onBroken)}`, "what-if on broken");
  await waitText(page, 'tr[data-whatif="flaky@sim-broken"]', has("cheapest"), "cheapest badge");
  await waitText(page, 'tr[data-whatif="chat@sim-azure"] [data-field="vs-actual"]', (t) => t === "+0.0%", "same price, same cost");
  await waitText(page, 'tr[data-whatif="chat@sim-openai"]', (t) => !t.includes("cheapest"), "no badge on a tie");
  await page.screenshot({ path: join(output, "whatif.png"), fullPage: true });

  // Audit log: the two keys this test created, newest first, by the admin from this machine,
  // and never their secrets.
  await page.goto(`${url}/ui#/audit`);
  await waitText(page, 'table[data-table="audit"]', has(teamA.id), "audit lists team-a's key");
  const audited = await page.locator('tr[data-action="key.create"] [data-field="target"]').allTextContents();
  assert.deepEqual(audited, [teamB.id, teamA.id]);
  const actors = await page.locator('tr[data-action="key.create"] [data-field="actor"]').allTextContents();
  assert.deepEqual(actors, ["admin", "admin"]);
  const auditText = await page.locator("#page").innerText();
  assert.ok(!auditText.includes(teamA.secret) && !auditText.includes(teamB.secret), "a secret on the audit page");
  await page.screenshot({ path: join(output, "audit.png"), fullPage: true });

  // Agent runs: none yet, and the page says so.
  await page.goto(`${url}/ui#/runs`);
  await waitText(page, '[data-empty="runs"]', has("No agent runs"), "runs empty state");

  // Live: new traffic shows on the open page without a reload.
  await page.goto(`${url}/ui#/overview`);
  await page.locator('#controls button[data-value="5m"]').click();
  await waitText(page, '[data-kpi="rps"] .sub', has(`${total} in window`), "before new traffic");
  await call(teamA, ask("chat"), "sim-openai");
  await waitText(page, '[data-kpi="rps"] .sub', has(`${total + 1} in window`), "after new traffic, no reload");

  // An agent run through the gateway, journaled to the gateway's store, shows up live.
  const events = await agentRun(teamB);
  const summary = events.find((e) => e.kind === "summary");
  assert.equal(summary.status, "completed");
  const modelCalls = events.filter((e) => e.kind === "model_call");
  const toolCalls = events.filter((e) => e.kind === "tool_started");
  assert.equal(modelCalls.length, 3);
  assert.equal(toolCalls.length, 3);
  const runRow = `tr[data-run="${summary.run_id}"]`;
  await page.goto(`${url}/ui#/runs`);
  await waitText(page, `${runRow} [data-field="status"]`, has("completed"), "run status");
  await waitText(page, `${runRow} [data-field="steps"]`, (t) => t === "3", "run steps");
  await waitText(page, `${runRow} [data-field="tool-calls"]`, (t) => t === "3", "run tool calls");
  const runCost = await waitText(page, `${runRow} [data-field="cost"]`, (t) => t.startsWith("$"), "run cost");
  // The journal keeps picodollars; the agent's own summary sums floats.
  const pico = (usd) => Math.round(usd * 1e12);
  assert.equal(pico(Number(runCost.slice(1))), pico(summary.totals.cost_usd));
  await page.screenshot({ path: join(output, "runs.png"), fullPage: true });
  await page.click(runRow);
  await page.waitForSelector('[data-table="steps"]');
  const stepCosts = await page.locator('[data-table="steps"] [data-field="cost"]').evaluateAll((cells) => cells.map((c) => Number(c.dataset.usd)));
  assert.deepEqual(stepCosts, modelCalls.map((e) => e.cost_usd), "cost per step");
  const tools = await page.locator('[data-table="steps"] [data-field="tools"]').allTextContents();
  assert.deepEqual(tools, ["calculatornow", "calculator", ""]);
  await page.screenshot({ path: join(output, "run-detail.png"), fullPage: true });

  assert.deepEqual(consoleErrors, [], "no errors in the browser console");
});

test("a team admin sees its own team only, and the actions its role may take", { timeout: 120_000 }, async () => {
  const admin = async (method, path, body) => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { "content-type": "application/json", authorization: `Bearer ${ADMIN}` },
      body: body ? JSON.stringify(body) : undefined,
    });
    assert.ok(response.ok, `${method} ${path}: ${response.status}`);
    return response.json();
  };
  const team = await admin("POST", "/admin/teams", { name: "research", budget_usd_day: 0.05, rpm: 100 });
  const lab = await createKey({ name: "lab", team: "research" });
  const ask = { model: "chat", max_tokens: 40, messages: [{ role: "user", content: "Where do otters sleep?" }] };
  for (let i = 0; i < 3; i++) await call(lab, ask, "sim-openai");
  const token = await admin("POST", "/admin/tokens", { role: "team-admin", team: "research", name: "lead" });

  // The lead's own browser: its token as the Basic-auth password.
  const leadContext = await chromium.launchPersistentContext(join(work, "profile-lead"), {
    executablePath: browserPath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"],
    httpCredentials: { username: "lead", password: token.token, send: "always" },
    viewport: { width: 1440, height: 1000 },
    deviceScaleFactor: 1,
  });
  try {
    const page = await leadContext.newPage();
    const consoleErrors = [];
    page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
    page.on("pageerror", (e) => consoleErrors.push(String(e)));

    // Keys: the team's only, and no keyless traffic (it is no team's).
    await page.goto(`${url}/ui#/keys`);
    await waitText(page, `tr[data-key="${lab.id}"] [data-field="requests"]`, (t) => t === "3", "lab's requests");
    assert.equal(await page.locator('[data-table="keys"] tbody tr').count(), 1);
    assert.ok(!(await page.locator("#page").innerText()).includes("Traffic without a virtual key"));
    // The role shows, and agent runs (no team's) are not offered.
    await waitText(page, "#role", (t) => t === "team-admin · research", "role badge");
    assert.equal(await page.locator('nav a[data-page="runs"]').isHidden(), true);
    assert.equal(await page.locator('nav a[data-page="teams"]').isVisible(), true);
    await page.screenshot({ path: join(output, "team-admin-keys.png"), fullPage: true });

    // Teams: its own, its spend against its budget; a new key yes, a new team no.
    await page.goto(`${url}/ui#/teams`);
    const row = `tr[data-team="${team.id}"]`;
    await waitText(page, `${row} [data-field="requests"]`, (t) => t === "3", "team requests");
    await waitText(page, `${row} [data-field="day"]`, has(`$${formatUsd(sent.byKey.lab)} of $0.05`), "team spend today");
    assert.equal(await page.locator('[data-table="teams"] tbody tr').count(), 1);
    assert.equal(await page.locator('button[data-action="new-team"]').isHidden(), true);
    await page.locator(`${row} button[data-action="new-key"]`).click();
    const secret = await waitText(page, '[data-field="new-key"]', (t) => t.startsWith("cb-"), "the new key, once");
    await waitText(page, `${row} [data-field="keys"]`, (t) => t === "2", "the team's keys after");
    await page.screenshot({ path: join(output, "team-admin-teams.png"), fullPage: true });

    // Requests and the overview: the team's traffic only.
    await page.goto(`${url}/ui#/requests`);
    await page.waitForSelector('[data-table="requests"]');
    await page.waitForFunction(() => document.querySelectorAll('[data-table="requests"] tbody tr').length === 3);
    await page.goto(`${url}/ui#/overview`);
    await page.locator('#controls button[data-value="5m"]').click();
    await waitText(page, '[data-kpi="rps"] .sub', has("3 in window"), "the team's requests in the window");

    // Audit: the changes about its team, newest first, and no secret.
    await page.goto(`${url}/ui#/audit`);
    await waitText(page, 'table[data-table="audit"]', has(lab.id), "audit lists lab");
    const actions = await page.locator('table[data-table="audit"] [data-field="action"]').allTextContents();
    assert.deepEqual(actions, ["key.create", "token.create", "key.create", "team.create"]);
    const actors = await page.locator('table[data-table="audit"] [data-field="actor"]').allTextContents();
    assert.ok(actors[0].startsWith("token:atk_"), `the lead made the newest key: ${actors[0]}`);
    const text = await page.locator("#page").innerText();
    assert.ok(!text.includes(secret) && !text.includes(lab.secret) && !text.includes(token.token), "a secret on the audit page");
    await page.screenshot({ path: join(output, "team-admin-audit.png"), fullPage: true });

    assert.deepEqual(consoleErrors, [], "no errors in the browser console");
    // The server refuses what the page hides.
    const refused = await page.evaluate(async () => (await fetch("/admin/teams", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "mine" }),
    })).status);
    assert.equal(refused, 403);
  } finally {
    await leadContext.close();
  }
});
