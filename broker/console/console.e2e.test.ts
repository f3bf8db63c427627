/**
 * The console in a real browser: Debian's Chromium driven by playwright-core, against a broker on PGlite with
 * simulated AWS (2 s boots) and its local agent host. Every page renders with no console error; a bad token at
 * login shows the error; a lease turning ready appears on the Leases page without a reload; a deployed app's
 * containers, a failed call and its live logs appear on the Functions page. A screenshot of each page is written to
 * `test-results/console/` (GPUBROKER_SCREENSHOTS=DIR writes them elsewhere: `docs/console` for the README's).
 * `.ci/run` installs chromium; under CI a missing browser fails the suite.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simScenario } from '../../providers/sim/scenario.ts';
import type { FunctionHandle } from '../../sdk/app.ts';
import { deployModule } from '../../sdk/cli/run.ts';
import { Broker } from '../../sdk/index.ts';
import { FAST_AWS_SCENARIO, FAST_POLICY } from '../../test/fast-aws.ts';
import { type RunningServer, startServer } from '../server.ts';
import { PAGES } from './layout.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const available = existsSync(CHROMIUM);
if (!available && process.env.CI) throw new Error(`the console suite needs Chromium at ${CHROMIUM} under CI`);
const SHOTS = resolve(process.env.GPUBROKER_SCREENSHOTS ?? 'test-results/console');

const dir = mkdtempSync(join(tmpdir(), 'gpubroker-console-e2e-'));
let server: RunningServer;
let browser: Browser;
let tenant: string;

beforeAll(async () => {
  if (!available) return;
  server = await startServer({
    port: 0,
    dataDir: join(dir, 'data'),
    seed: 11,
    scenario: simScenario(FAST_AWS_SCENARIO as never),
  });
  await server.broker.setPolicy(FAST_POLICY, 'operator');
  tenant = (await server.broker.tokens.create('acme', 'tenant')).token;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Root in CI needs --no-sandbox; the rest keep Chromium off the network this machine does not have.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  mkdirSync(SHOTS, { recursive: true });
});
afterAll(async () => {
  await browser?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A page whose console errors and uncaught exceptions are collected. */
async function openPage(): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(error.message));
  return { page, errors };
}

async function logIn(page: Page, token: string): Promise<void> {
  await page.goto(`${server.url}/login`);
  await page.fill('input[name=token]', token);
  await page.click('button[type=submit]');
}

describe.skipIf(!available)('the console in Chromium', () => {
  it("shows an app's containers, a failed call with its reason, and its logs as they are written", async () => {
    const client = new Broker({ url: server.url, token: server.operatorToken as string });
    const { exports } = await deployModule(client, 'test/fixtures/functions-app.ts', true);
    const square = exports.square as FunctionHandle<[number], number>;
    const boom = exports.boom as FunctionHandle<[string], never>;
    expect(await square.remote(3)).toBe(9);
    const { page, errors } = await openPage();
    await logIn(page, server.operatorToken as string);
    await page.goto(`${server.url}/functions`);
    await page.locator('tr[data-container]').first().waitFor({ timeout: 30_000 });
    // Written after the page opened: the lines arrive through the event stream.
    for await (const _ of square.map([11, 12, 13])) void _;
    await boom.remote('kaboom from the console test').catch(() => undefined);
    await page.locator('#logs', { hasText: 'squaring 12' }).waitFor({ timeout: 30_000 });
    await page.locator('td.reason', { hasText: 'kaboom from the console test' }).waitFor({ timeout: 30_000 });
    await page.screenshot({ path: join(SHOTS, 'functions.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('shows an error for a bad token and stays on the login page', async () => {
    const { page, errors } = await openPage();
    await logIn(page, 'gpb_this_is_not_a_token');
    await expect(page.getByTestId('login-error').textContent()).resolves.toContain('unknown or revoked');
    expect(new URL(page.url()).pathname).toBe('/login');
    await page.screenshot({ path: join(SHOTS, 'login-error.png') });
    // The 401 of the refused login is the only error the browser reports.
    expect(errors.filter((e) => !e.includes('401'))).toEqual([]);
    await page.context().close();
  });

  it('renders every page for the operator with no console error, and writes a screenshot of each', async () => {
    const operator = new Broker({ url: server.url, token: server.operatorToken as string });
    const lease = await new Broker({ url: server.url, token: tenant }).gpus.request(
      { gpu: 'H100', count: 2 },
      { timeoutMs: 60_000 },
    );
    await operator.api('put', '/v1/tenants/{name}/limits', {
      params: { name: 'acme' },
      body: { gpuQuota: 16, spendLimitUsdPerMonth: 5_000 },
    });
    const { page, errors } = await openPage();
    await logIn(page, server.operatorToken as string);
    await page.waitForURL(`${server.url}/fleet`);
    for (const [name, definition] of Object.entries(PAGES)) {
      await page.goto(`${server.url}${definition.path}`);
      await page.waitForLoadState('load');
      const heading = await page.locator('main h1').first().textContent();
      expect(heading, name).toContain(name === 'plans' ? 'Plan' : definition.title);
      // Functions has its own test (and screenshot) with an app deployed.
      if (name !== 'functions') await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
    }
    expect(errors).toEqual([]);
    await lease.release();
    await page.context().close();
  });

  it('shows a lease turning ready without a reload', async () => {
    const { page, errors } = await openPage();
    await logIn(page, tenant);
    await page.waitForURL(`${server.url}/leases`);
    let navigations = 0;
    page.on('framenavigated', (frame) => {
      if (frame === page.mainFrame()) navigations++;
    });
    // Enough GPUs that the buffer cannot serve it at once: it is pending first, then ready after a boot.
    const lease = await new Broker({ url: server.url, token: tenant }).leases.create({
      gpu: 'H100',
      count: 16,
    });
    await page.locator(`tr[data-lease="${lease.id}"]`).waitFor({ timeout: 30_000 });
    await page.locator(`tr[data-lease="${lease.id}"][data-status="ready"]`).waitFor({ timeout: 60_000 });
    expect(navigations).toBe(0);
    expect(errors).toEqual([]);
    await new Broker({ url: server.url, token: tenant }).leases.release(lease.id);
    await page.context().close();
  });
});
