/**
 * `gpubroker usage | invoice | costs | prices | tenant limits`, run in this process (test/cli-in-process.ts)
 * against a real broker started here: PGlite in a temporary directory, simulated AWS with a 300 ms boot, a loop
 * ticking every second, the meter checkpointing every 200 ms. Alice holds 8 × H100 for a moment before the
 * commands run; they run in the test directory, so they find the operator token in `.gpubroker/` as the SDK does.
 * One command runs as a real child process.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simScenario } from '../../providers/sim/scenario.ts';
import { Broker, type Invoice, type Lease } from '../../sdk/index.ts';
import { runCliInProcess } from '../../test/cli-in-process.ts';
import { type CliRun, runCli } from '../../test/cli-process.ts';
import { quietAwsScenario } from '../../test/fast-aws.ts';
import { monthOf } from '../billing/months.ts';
import { type RunningServer, startServer } from '../server.ts';
import { INVOICE_CSV_HEADER } from './invoice.ts';

/** Micro-USD per H100-second. */
const H100_RATE = 1_000;

let server: RunningServer;
let dir: string;
let aliceToken: string;
let lease: Lease;
let released: Lease;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gpubroker-billing-cli-'));
  server = await startServer({
    port: 0,
    dataDir: join(dir, '.gpubroker'),
    meterHeartbeatMs: 200,
    scenario: simScenario({
      ...quietAwsScenario(1, 300),
      stock: { rules: [{ match: { instanceType: 'p5.4xlarge' }, onDemandPerZone: 0 }] },
    }),
  });
  await server.broker.setPolicy(
    {
      planSchedule: '* * * * * *',
      spotMaxShare: 0,
      vendors: { allow: ['aws'], deny: [] },
      regions: { allow: ['us-east-1'], deny: [] },
    },
    'test',
  );
  const operator = new Broker({ url: server.url, token: server.operatorToken });
  await operator.prices.set({ gpuMicrosPerSecond: { H100: H100_RATE } });
  aliceToken = (await operator.tokens.create({ tenant: 'alice' })).token;
  const alice = new Broker({ url: server.url, token: aliceToken });
  lease = await alice.gpus.request(
    { gpu: 'H100', count: 8, placement: 'single-node' },
    { timeoutMs: 30_000 },
  );
  await new Promise((resolve) => setTimeout(resolve, 1_200));
  released = await alice.leases.release(lease.id);
  writeFileSync(join(dir, 'bad-prices.json'), JSON.stringify({ markup: -1 }));
  writeFileSync(
    join(dir, 'good-prices.json'),
    JSON.stringify({ markup: 0.3, gpuMicrosPerSecond: { H100: H100_RATE } }),
  );
}, 60_000);

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The CLI in the test directory, pointed at the broker by GPUBROKER_URL, with no GPUBROKER_TOKEN set. */
function cli(...args: string[]): Promise<CliRun> {
  return runCliInProcess(args, { cwd: dir, env: { GPUBROKER_URL: server.url, GPUBROKER_TOKEN: undefined } });
}

const month = () => monthOf(Date.now());
const previousMonth = () => {
  const now = new Date();
  return monthOf(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
};

describe('gpubroker billing commands', () => {
  it('report usage, invoices (JSON, CSV, table) and costs; refuse bad flags with exit 2', async () => {
    const seconds = Math.ceil(((released.endedAtMs ?? 0) - (lease.readyAtMs ?? 0)) / 1000);
    const gpuSeconds = seconds * 8;
    const amount = gpuSeconds * H100_RATE;
    const usd = `$0.${String(amount).padStart(6, '0')}`;

    const [usageJson, usageTable, aliceUsage, csv, json, table, badMonth, forbidden, costsJson, costsTable] =
      await Promise.all([
        cli('usage', '--json'),
        cli('usage', '--group-by', 'lease'),
        cli('usage', '--token', aliceToken, '--json'),
        cli('invoice', '--csv'),
        cli('invoice', '--json', '--tenant', 'alice'),
        cli('invoice'),
        cli('invoice', '--month', '2026-13'),
        cli('invoice', '--token', aliceToken, '--tenant', 'operator'),
        cli('costs', '--json'),
        cli('costs'),
      ]);

    expect(usageJson.code).toBe(0);
    const usage = JSON.parse(usageJson.stdout);
    expect(usage).toMatchObject({
      groupBy: 'gpu',
      rows: [{ tenant: 'alice', key: 'H100', seconds, gpuSeconds, amountMicroUsd: amount }],
      totalGpuSeconds: gpuSeconds,
      totalMicroUsd: amount,
    });
    expect(JSON.parse(aliceUsage.stdout).rows).toEqual(usage.rows);
    expect(usageTable.code).toBe(0);
    expect(usageTable.stdout).toMatch(
      new RegExp(`│ alice +│ ${lease.id} +│ +${seconds} │ +${gpuSeconds} │ +\\${usd} │`),
    );
    expect(usageTable.stdout).toMatch(new RegExp(`│ total +│ +│ +${seconds} │ +${gpuSeconds} │ +\\${usd} │`));

    expect(csv).toMatchObject({ code: 0, stderr: '' });
    expect(csv.stdout.split('\n')).toEqual([
      INVOICE_CSV_HEADER,
      `alice,${month()},open,H100,,${lease.id},${seconds},${gpuSeconds},${H100_RATE},${amount},`,
      '',
    ]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout) as Invoice).toMatchObject({
      tenant: 'alice',
      month: month(),
      status: 'open',
      priceBookVersion: 1,
      lines: [
        {
          gpu: 'H100',
          lease: lease.id,
          seconds,
          gpuSeconds,
          rateMicroUsd: H100_RATE,
          amountMicroUsd: amount,
        },
      ],
      totalMicroUsd: amount,
    });
    expect(table.code).toBe(0);
    expect(table.stdout).toContain(`invoice alice ${month()} (open, price book version 1)`);
    expect(table.stdout).toContain(
      `invoice operator ${month()} (open, price book version 1)\n  no usage\ntotal $0.000000\n`,
    );
    expect(table.stdout).toMatch(
      new RegExp(`│ H100 +│ ${lease.id} +│ +${seconds} │ +${gpuSeconds} │ +\\$3\\.600000 │`),
    );
    expect(table.stdout).toContain(`total ${usd}\n`);

    expect(badMonth).toMatchObject({
      code: 2,
      stdout: '',
      stderr: 'gpubroker: --month: "2026-13" is not a month like 2026-11\n',
    });
    expect(forbidden).toMatchObject({
      code: 2,
      stderr: 'gpubroker: Forbidden: only operators see other tenants (field: tenant)\n',
    });

    expect(costsJson.code).toBe(0);
    const costs = JSON.parse(costsJson.stdout);
    const h100 = costs.byGpu.find((row: { gpu: string }) => row.gpu === 'H100');
    expect(h100.billedGpuSeconds).toBe(gpuSeconds);
    expect(h100.revenueMicroUsd).toBe(amount);
    expect(h100.provisionedGpuSeconds).toBeGreaterThanOrEqual(h100.billedGpuSeconds);
    expect(h100.utilization).toBeGreaterThan(0);
    expect(h100.utilization).toBeLessThanOrEqual(1);
    expect(costsTable.code).toBe(0);
    expect(costsTable.stdout).toMatch(/│ H100 +│ +\d+\.\d{3} │ +\d+\.\d{3} │ +\d+\.\d % │ +\$\d+\.\d{6} │/);
    expect(costsTable.stdout).toMatch(/│ all +│/);
  });

  it('sets prices and tenant limits, closes only ended months, and names a bad field or flag', async () => {
    const [badPrices, missingFile, good, limits, badQuota, unknownTenant, early, closed, closeCsv] =
      await Promise.all([
        cli('prices', 'set', 'bad-prices.json'),
        cli('prices', 'set', 'no-such.json'),
        cli('prices', 'set', 'good-prices.json'),
        cli('tenant', 'limits', 'alice', '--spend-per-hour', '100', '--on-limit', 'stop', '--json'),
        cli('tenant', 'limits', 'alice', '--gpu-quota', 'lots'),
        cli('tenant', 'limits', 'nobody'),
        cli('invoice', 'close', month()),
        cli('invoice', 'close', previousMonth()),
        cli('invoice', 'close', previousMonth(), '--csv'),
      ]);
    expect(badPrices.code).toBe(2);
    expect(badPrices.stderr).toMatch(/^gpubroker: Invalid price book: priceBook\.markup: .+\n$/);
    expect(missingFile.code).toBe(2);
    expect(missingFile.stderr).toMatch(/^gpubroker: no-such\.json: cannot read the price book: /);
    expect(limits.code).toBe(0);
    expect(JSON.parse(limits.stdout)).toEqual({
      gpuQuota: null,
      spendLimitUsdPerHour: 100,
      spendLimitUsdPerMonth: null,
      onSpendLimit: 'stop',
    });
    expect(badQuota).toMatchObject({
      code: 2,
      stderr: 'gpubroker: --gpu-quota: "lots" is not an integer from 0 to 1000000\n',
    });
    expect(unknownTenant).toMatchObject({
      code: 2,
      stderr: 'gpubroker: Not found: no tenant "nobody" (field: name)\n',
    });
    expect(early.code).toBe(2);
    expect(early.stderr).toBe(`gpubroker: Invalid request: month: ${month()} has not ended yet\n`);
    expect(closed).toMatchObject({
      code: 0,
      stdout: `closed ${previousMonth()}: 2 invoices, $0.000000 in all\n`,
    });
    expect(closeCsv).toMatchObject({
      code: 2,
      stderr: 'gpubroker: --csv: is not an option of invoice close\n',
    });

    expect(good.code).toBe(0);
    expect(good.stdout).toMatch(/^price book version 2, set by operator at \S+\n {2}markup: 0\.2 → 0\.3\n$/);
    const [get, history, shown, cleared] = await Promise.all([
      cli('prices', 'get', '--json'),
      cli('prices', 'history'),
      cli('tenant', 'limits', 'alice'),
      cli('tenant', 'limits', 'operator', '--spend-per-month', '5000', '--gpu-quota', 'none'),
    ]);
    expect(get.code).toBe(0);
    expect(JSON.parse(get.stdout)).toMatchObject({
      version: 2,
      createdBy: 'operator',
      book: { markup: 0.3 },
      gpuRates: { H100: H100_RATE },
    });
    expect(history.code).toBe(0);
    const rows = history.stdout.split('\n').filter((line) => /│ +\d+ │/.test(line));
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatch(/│ +2 │ operator +│ \S+ +│ markup/);
    expect(rows[1]).toMatch(/│ +1 │ operator +│ \S+ +│ gpuMicrosPerSecond\.H100/);
    expect(shown).toMatchObject({
      code: 0,
      stdout: [
        'tenant alice',
        '  GPU quota        none',
        '  spend per hour   $100.000000',
        '  spend per month  none',
        '  at a limit       stop (new leases refused, running ones released)',
        '',
      ].join('\n'),
    });
    expect(cleared.code).toBe(0);
    expect(cleared.stdout).toContain('  spend per month  $5000.000000\n');
  });
});

describe('gpubroker billing commands (child process)', () => {
  it('refuse a bad flag with exit status 2 and one line on stderr, as a real process', async () => {
    const { GPUBROKER_TOKEN: _token, ...env } = process.env;
    const badMonth = await runCli(['invoice', '--month', '2026-13'], {
      cwd: dir,
      env: { ...env, GPUBROKER_URL: server.url },
    });
    expect(badMonth).toMatchObject({
      code: 2,
      stdout: '',
      stderr: 'gpubroker: --month: "2026-13" is not a month like 2026-11\n',
    });
  });
});
