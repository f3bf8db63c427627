/**
 * `lease shell` end to end: a real broker on HTTP (PGlite, simulated AWS with 2 s boots, one 8-GPU instance held
 * warm), a `gpubroker agent` child process joined to it (in bubblewrap where this machine can isolate), and the SDK
 * and the CLI on the other side: a real pseudo-terminal of the size asked for and resized, the lease's GPUs, the
 * exit status, piped input, and who may not open or type into a shell.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../broker/server.ts';
import { simScenario } from '../providers/sim/scenario.ts';
import { Broker, BrokerApiError, type LeaseHandle } from '../sdk/index.ts';
import { runCli } from '../test/cli-process.ts';
import { FAST_AWS_SCENARIO, FAST_POLICY, until } from '../test/fast-aws.ts';
import { agentIsolation, spawnAgent } from '../test/test-agent.ts';

const BIN = new URL('../bin/gpubroker.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'gpubroker-shell-'));
let server: RunningServer;
let broker: Broker;
let lease: LeaseHandle;
let agent: ChildProcess | undefined;

beforeAll(async () => {
  server = await startServer({
    port: 0,
    dataDir: join(dir, 'data'),
    seed: 5,
    scenario: simScenario(FAST_AWS_SCENARIO as never),
    agentHost: false,
    agentHeartbeatMs: 1_000,
  });
  await server.broker.setPolicy(FAST_POLICY, 'test');
  broker = new Broker({ url: server.url, token: server.operatorToken as string });
  const instance = await until(
    'a running instance',
    async () => server.broker.fleet.all().find((i) => i.state === 'running'),
    60_000,
  );
  const { token } = await broker.call<{ token: string }>('POST', '/v1/tokens/join', { ttlMs: 600_000 });
  const tokenFile = join(dir, 'join-token');
  writeFileSync(tokenFile, token, { mode: 0o600 });
  agent = spawnAgent(
    {
      broker: server.url,
      stateDir: join(dir, 'agent'),
      args: ['--token-file', tokenFile, '--instance-id', instance.id, '--virtual-gpus', '8xH100'],
    },
    { stdio: 'ignore', env: { ...process.env, GPUBROKER_LOG: 'warn' } },
  );
  await until('its agent', async () => (server.broker.agents?.placeable(instance.id) ? true : undefined));
  lease = await broker.gpus.request({ gpu: 'H100', count: 2 });
  expect(lease.allocations[0]?.instanceId).toBe(instance.id);
}, 120_000);

afterAll(async () => {
  await lease?.release();
  agent?.kill('SIGKILL');
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Waits until `output()` matches. */
function waitFor(output: () => string, pattern: RegExp, ms = 20_000): Promise<true> {
  return until(
    `${pattern} in ${JSON.stringify(output().slice(-300))}`,
    async () => (pattern.test(output()) ? true : undefined),
    ms,
  );
}

describe('lease shell', () => {
  it('runs a shell under a real pseudo-terminal of the size asked for, resized, with the leased GPUs, and its exit status', async () => {
    let output = '';
    const shell = await broker.leases.shell(lease.id, {
      cols: 100,
      rows: 30,
      onOutput: (data) => {
        output += Buffer.from(data).toString();
      },
    });
    shell.write('tty; echo "gpus=$CUDA_VISIBLE_DEVICES uid=$(id -u)"; stty size\n');
    await waitFor(() => output, /^30 100\r$/m);
    expect(output).toMatch(/^\/dev\/pts\/\d+\r$/m);
    const gpus = lease.allocations[0]?.gpuIndices.join(',');
    const uid = Number(/gpus=\S+ uid=(\d+)/.exec(output)?.[1]);
    expect(output).toContain(`gpus=${gpus} `);
    // In the agent's sandbox, as for exec: its own user.
    if (agentIsolation() === 'bubblewrap') expect(uid).toBeGreaterThanOrEqual(200_000);
    shell.resize(120, 40);
    await until('the new size', async () => {
      shell.write('stty size\n');
      await new Promise((resolve) => setTimeout(resolve, 200));
      return /^40 120\r$/m.test(output) ? true : undefined;
    });
    shell.write('exit 7\n');
    expect(await shell.exit).toEqual({ code: 7, signal: null });
  }, 60_000);

  it("is 404 for someone else's lease, to open a shell or to type into one, and 409 for a lease not ready", async () => {
    const { token } = await broker.tokens.create({ tenant: 'other' });
    const other = new Broker({ url: server.url, token });
    const refused = await other.leases.shell(lease.id).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(BrokerApiError);
    expect((refused as BrokerApiError).status).toBe(404);
    // Its session id does not open it to another tenant either.
    let session: string | undefined;
    const opened = await broker.fetch(`/v1/leases/${lease.id}/shell`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ command: '/bin/cat' }),
    });
    const reader = opened.body?.getReader();
    const first = await reader?.read();
    session = (
      JSON.parse(
        Buffer.from(first?.value ?? [])
          .toString()
          .split('\n')[0] as string,
      ) as { session: string }
    ).session;
    const typed = await other
      .call('POST', `/v1/leases/${lease.id}/shell/${session}`, { eof: true })
      .catch((e) => e);
    expect((typed as BrokerApiError).status).toBe(404);
    await broker.call('POST', `/v1/leases/${lease.id}/shell/${session}`, { eof: true });
    await reader?.cancel();
    session = undefined;
    // A lease still pending: the loop buys its machine first.
    const pending = await broker.leases.create({ gpu: 'H100', count: 8, placement: 'single-node' });
    try {
      const early = await broker.leases.shell(pending.id).catch((error: unknown) => error);
      expect((early as BrokerApiError).status).toBe(409);
    } finally {
      await broker.leases.release(pending.id);
    }
  }, 60_000);

  it('takes piped input in the CLI and exits with the remote status; a bad lease is one line on stderr', async () => {
    const env = { ...process.env, GPUBROKER_TOKEN: server.operatorToken as string };
    const child = spawn(process.execPath, [BIN, 'lease', 'shell', lease.id, '--url', server.url], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.stdin.end('echo "h""i"; exit 3\n');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect({ code, stderr }).toEqual({ code: 3, stderr: '' });
    expect(stdout).toMatch(/^hi\r$/m);
    const missing = await runCli(['lease', 'shell', 'lease_missing', '--url', server.url], { env });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^gpubroker: Not found: .*\n$/);
  }, 60_000);

  it('puts a local terminal in raw mode (Ctrl-C goes to the remote shell), follows its size, and restores it', async () => {
    // This side's terminal is a pseudo-terminal of `script` too, 90 × 20, resized to 101 × 31 once the file
    // `resize` is there (in the background, as a window would be); after the CLI, `stty -a` shows its modes.
    const cli = `${process.execPath} ${BIN} lease shell ${lease.id} --url ${server.url}`;
    const trigger = join(dir, 'resize');
    const resize = `(while [ ! -e ${trigger} ]; do sleep 0.1; done; stty cols 101 rows 31 </dev/tty) &`;
    const local = spawn(
      'script',
      ['-qfec', `stty cols 90 rows 20; ${resize} ${cli}; echo "cli-exit=$?"; stty -a`, '/dev/null'],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
        env: { ...process.env, GPUBROKER_TOKEN: server.operatorToken as string },
      },
    );
    let output = '';
    local.stdout.on('data', (chunk) => {
      output += chunk;
    });
    const closed = new Promise((resolve) => local.on('close', resolve));
    local.stdin.write('stty size\n');
    await waitFor(() => output, /^20 90\r+$/m);
    // SIGWINCH here: the remote terminal follows.
    writeFileSync(trigger, '');
    await until('the new size', async () => {
      local.stdin.write('stty size\n');
      await new Promise((resolve) => setTimeout(resolve, 200));
      return /^31 101\r+$/m.test(output) ? true : undefined;
    });
    // Raw: Ctrl-C interrupts the remote sleep, not the CLI.
    local.stdin.write('sleep 30\n');
    await new Promise((resolve) => setTimeout(resolve, 500));
    local.stdin.write('\x03');
    local.stdin.write('exit 4\n');
    await waitFor(() => output, /cli-exit=4/);
    await waitFor(() => output, /; eol/);
    local.stdin.end();
    await closed;
    // Left as it was (Node too resets a terminal it made raw when it exits; the CLI does it before, also on errors).
    expect(output).toMatch(/ icanon /);
    expect(output).toMatch(/ echo /);
  }, 60_000);
});
