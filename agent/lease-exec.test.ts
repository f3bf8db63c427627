/**
 * `lease shell` on the agent's side, without the sandbox (agent/lease-shell.e2e.test.ts runs it in one, through
 * a broker): the command gets a real pseudo-terminal of the size asked for, its input, its resizes, and its exit.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startExec } from './lease-exec.ts';

const workRoot = mkdtempSync(join(tmpdir(), 'gpubroker-lease-exec-'));

afterAll(() => rmSync(workRoot, { recursive: true, force: true }));

function run(args: readonly string[], tty: { cols: number; rows: number }) {
  const running = startExec(
    {
      execId: `t${Math.random().toString(36).slice(2)}`,
      command: '/bin/sh',
      args,
      gpuIndices: [2, 5],
      env: {},
      tty,
    },
    { workRoot, machineGpus: 8 },
  );
  let output = '';
  running.child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exit = new Promise<number | null>((resolve) => running.child.on('close', (code) => resolve(code)));
  return {
    running,
    output: () => output,
    exit: exit.then(async (code) => {
      await running.cleanUp();
      return code;
    }),
  };
}

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('an exec with a tty', () => {
  it('runs under a pseudo-terminal of the size asked for, with the leased GPUs, and exits with its status', async () => {
    const shell = run([], { cols: 100, rows: 30 });
    shell.running.terminal?.write(Buffer.from('tty; echo "gpus=$CUDA_VISIBLE_DEVICES"; stty size; exit 7\n'));
    expect(await shell.exit).toBe(7);
    expect(shell.output()).toMatch(/\/dev\/pts\/\d+\r\n/);
    expect(shell.output()).toContain('gpus=2,5\r\n');
    expect(shell.output()).toContain('30 100\r\n');
    // The FIFO of its resizes is gone with it.
    expect(readdirSync(workRoot)).toEqual([]);
  });

  it('takes a new size while it runs, and reads end of file when its input closes', async () => {
    const shell = run([], { cols: 80, rows: 24 });
    const terminal = shell.running.terminal;
    terminal?.resize({ cols: 132, rows: 43 });
    await until('new size', () => {
      terminal?.write(Buffer.from('stty size\n'));
      return shell.output().includes('43 132\r\n');
    });
    terminal?.end();
    expect(await shell.exit).toBe(0);
  });

  it('runs the command it is given, quoted as it was', async () => {
    const shell = run(['-c', `printf '%s|' "$0" "it's" && stty size`, 'a b'], { cols: 9, rows: 7 });
    expect(await shell.exit).toBe(0);
    expect(shell.output()).toBe("a b|it's|7 9\r\n");
  });
});
