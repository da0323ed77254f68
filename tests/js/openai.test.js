// The official OpenAI JS SDK drives the gateway unchanged: one streamed chat completion and one
// Responses call, served by simulated providers of two different dialects behind Crossbar.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const binary = process.env.CROSSBAR_BIN ?? path.join(root, 'target', 'debug', 'crossbar');
const config = path.join(root, 'tests', 'sdk', 'crossbar.sdk.toml');

let gateway;
let client;

before(async () => {
  gateway = spawn(binary, ['serve', '--config', config, '--listen', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: gateway.stdout });
  const [line] = await once(lines, 'line');
  assert.match(line, /^crossbar listening on /);
  const url = line.replace('crossbar listening on ', '');
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-crossbar-sdk-test', maxRetries: 0 });
});

after(async () => {
  gateway.kill('SIGTERM');
  await once(gateway, 'exit');
});

const weatherTool = {
  type: 'function',
  name: 'get_weather',
  description: 'Current weather in a city',
  parameters: {
    type: 'object',
    properties: { city: { type: 'string' } },
    required: ['city'],
    additionalProperties: false,
  },
  strict: true,
};

for (const model of ['gpt-4o', 'claude-sonnet']) {
  test(`streamed chat completion on ${model}`, async () => {
    const stream = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'Say something short.' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage;
    let finish;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    assert.ok(text.length > 0, 'streamed text');
    assert.equal(finish, 'stop');
    assert.ok(usage.prompt_tokens > 0 && usage.completion_tokens > 0, 'usage reported');
  });

  test(`responses: a tool call, then the answer, on ${model}`, async () => {
    const first = await client.responses.create({
      model,
      input: 'Use get_weather for Paris.',
      tools: [weatherTool],
    });
    assert.equal(first.status, 'completed');
    const call = first.output.find((item) => item.type === 'function_call');
    assert.equal(call.name, 'get_weather');
    assert.equal(typeof JSON.parse(call.arguments).city, 'string', 'schema-valid arguments');
    assert.ok(first.usage.input_tokens > 0 && first.usage.output_tokens > 0);

    // Continue from the stored response: only the tool output is sent.
    const stream = await client.responses.create({
      model,
      previous_response_id: first.id,
      input: [{ type: 'function_call_output', call_id: call.call_id, output: 'sunny, 21 C' }],
      tools: [weatherTool],
      stream: true,
    });
    const types = [];
    let completed;
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'response.completed') completed = event.response;
    }
    assert.equal(types[0], 'response.created');
    assert.ok(types.includes('response.output_text.delta'));
    assert.equal(types.at(-1), 'response.completed');
    assert.match(completed.output_text ?? completed.output[0].content[0].text, /sunny, 21 C/);
    assert.ok(completed.usage.total_tokens > 0);

    const fetched = await client.responses.retrieve(completed.id);
    assert.equal(fetched.id, completed.id);
  });
}
