/**
 * The operator's console: HTML pages at `/` on the broker's own port, behind the same tokens as the API. Pages are
 * rendered on the server (hono's `html` templates) from the API's own answers (api.ts), and kept live with htmx:
 * the page listens to `/console/events` (server-sent events) and fetches its main area again when a topic it shows
 * changes. Charts are Vega-Lite rendered to SVG on the server. Why this stack: no build step and no client
 * framework to ship or keep (two small scripts from npm, served from the package), every page works as plain HTML,
 * and the console cannot drift from the API because it reads nothing else.
 */
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { html } from 'hono/html';
import { streamSSE } from 'hono/streaming';
import { every } from '../../lib/clock.ts';
import type { RuntimeLogLine } from '../../runtime/runtime.ts';
import type { BrokerCore } from '../broker.ts';
import { ConsoleApi, ConsoleApiError, type Fetch } from './api.ts';
import { consoleAsset } from './assets.ts';
import { ConsoleFeed } from './feed.ts';
import { time } from './format.ts';
import { type Html, layout, loginPage, notice, PAGES, type PageName, visiblePages } from './layout.ts';
import { fleetPage } from './pages/fleet.ts';
import { functionsLogPane, functionsPage } from './pages/functions.ts';
import { leasesPage } from './pages/leases.ts';
import { moneyPage } from './pages/money.ts';
import { plansPage } from './pages/plans.ts';
import { policyPage } from './pages/policy.ts';
import { endSession, type Session, safeNext, sessionOf, startSession, tokenOf } from './session.ts';

const SECURITY_HEADERS = [
  [
    'content-security-policy',
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
  ],
  ['x-content-type-options', 'nosniff'],
  ['referrer-policy', 'same-origin'],
] as const;

/** Log lines a console receives at most per flush (4 a second); the rest are counted, not sent. */
const LOG_LINES_PER_FLUSH = 50;
const LOG_FLUSH_MS = 250;
const KEEPALIVE_MS = 15_000;

export function createConsole(broker: BrokerCore, api: Fetch): Hono {
  const app = new Hono();
  const feed = new ConsoleFeed(broker);
  broker.onClose(() => feed.close());

  // Defence in depth for pages that show what tenants named: only this origin's scripts run (htmx and its SSE
  // extension, no inline script), nothing is framed; the charts' SVG carries inline style attributes.
  app.use(async (c, next) => {
    await next();
    if (c.res.headers.get('content-type')?.startsWith('text/html'))
      for (const [name, value] of SECURITY_HEADERS) c.res.headers.set(name, value);
  });

  app.onError((error, c) => {
    broker.logger.error({ err: error }, 'console page failed');
    return c.html(
      html`<!doctype html><title>Error · gpubroker</title><link rel="stylesheet" href="/console/assets/console.css" /><main>${notice('Something went wrong', 'The page could not be made; the broker log has the details.')}</main>`,
      500,
    );
  });

  app.get('/console/assets/:name', (c) => {
    const asset = consoleAsset(c.req.param('name'));
    if (!asset) return c.text('not found', 404);
    return c.body(new Uint8Array(asset.body), 200, {
      'content-type': asset.type,
      'cache-control': 'public, max-age=3600',
    });
  });

  app.get('/login', (c) => c.html(loginPage({ next: safeNext(c.req.query('next')) })));
  app.post('/login', bodyLimit({ maxSize: 16 * 1024 }), async (c) => {
    const form = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>);
    const token = typeof form.token === 'string' ? form.token.trim() : '';
    const next = safeNext(typeof form.next === 'string' ? form.next : undefined);
    const principal = token ? await broker.tokens.authenticate(token) : undefined;
    if (!principal)
      return c.html(
        loginPage({ next, error: token ? 'That token is unknown or revoked.' : 'Enter a token.' }),
        401,
      );
    startSession(c, token);
    return c.redirect(next, 303);
  });
  app.post('/logout', (c) => {
    endSession(c);
    return c.redirect('/login', 303);
  });

  /** The session, or the answer to give instead: the login page (401 for a token that was sent but is bad). */
  const session = async (c: Context): Promise<Session | Response> => {
    const found = await sessionOf(c, broker.tokens);
    if (found) return found;
    const sent = tokenOf(c) !== undefined;
    if (sent) endSession(c);
    const next = safeNext(c.req.path + (new URL(c.req.url).search || ''));
    if (c.req.header('hx-request')) {
      c.header('hx-redirect', `/login?next=${encodeURIComponent(next)}`);
      return c.body(null, 401);
    }
    if (sent) return c.html(loginPage({ next, error: 'That token is unknown or revoked.' }), 401);
    return c.redirect(`/login?next=${encodeURIComponent(next)}`, 303);
  };

  app.get('/', async (c) => {
    const s = await session(c);
    if (s instanceof Response) return s;
    const first = visiblePages(s.principal)[0] ?? 'leases';
    return c.redirect(PAGES[first].path, 303);
  });

  const page = (
    name: PageName,
    render: (c: Context, api: ConsoleApi, s: Session) => Promise<Html>,
    aside?: () => Html,
  ) =>
    app.get(PAGES[name].path, async (c) => {
      const s = await session(c);
      if (s instanceof Response) return s;
      let main: Html;
      let status: 200 | 403 | 404 | 400 = 200;
      if (PAGES[name].operatorOnly && s.principal.role !== 'operator') {
        main = notice(PAGES[name].title, 'This page needs an operator token.');
        status = 403;
      } else
        try {
          main = await render(c, new ConsoleApi(api, s.token), s);
        } catch (error) {
          if (!(error instanceof ConsoleApiError) || error.status >= 500) throw error;
          main = notice(PAGES[name].title, error.message);
          status = error.status === 404 ? 404 : error.status === 403 ? 403 : 400;
        }
      const url = new URL(c.req.url);
      if (c.req.header('hx-request')) return c.html(main, status);
      return c.html(
        layout({
          page: name,
          principal: s.principal,
          refreshUrl: url.pathname + url.search,
          main,
          ...(aside ? { aside: aside() } : {}),
        }),
        status,
      );
    });

  const now = () => broker.clock.now();
  page('fleet', (_c, a) => fleetPage(a, now()));
  page('leases', (_c, a, s) => leasesPage(a, s.principal, now()));
  page('functions', (_c, a, s) => functionsPage(a, s.principal, now()), functionsLogPane);
  page('plans', (c, a) => plansPage(a, c.req.query('id') || undefined));
  page('money', (c, a, s) =>
    moneyPage(a, s.principal, now(), c.req.query('range') === 'month' ? 'month' : 'day'),
  );
  page('policy', (_c, a) => policyPage(a));

  app.get('/console/events', async (c) => {
    const s = await session(c);
    if (s instanceof Response) return c.body(null, 401);
    const { principal } = s;
    return streamSSE(c, async (stream) => {
      const pending: RuntimeLogLine[] = [];
      let skipped = 0;
      let close: () => void = () => undefined;
      const ended = new Promise<void>((resolve) => {
        close = resolve;
      });
      stream.onAbort(() => close());
      // A write to a page that went away ends this stream (and is never an unhandled rejection).
      const send = (write: Promise<unknown>) => void write.catch(() => close());
      const unsubscribe = feed.subscribe(
        (topic) => send(stream.writeSSE({ event: topic, data: String(now()) })),
        () => close(),
      );
      const stopLogs = broker.runtime.onLog((line) => {
        if (principal.role !== 'operator' && line.tenantId !== principal.tenantId) return;
        if (pending.length < LOG_LINES_PER_FLUSH) pending.push(line);
        else skipped++;
      });
      const flush = every(broker.clock, LOG_FLUSH_MS, () => {
        if (pending.length === 0 && skipped === 0) return;
        const fragment = logFragment(pending.splice(0), skipped);
        skipped = 0;
        send(Promise.resolve(fragment).then((text) => stream.writeSSE({ event: 'log', data: String(text) })));
      });
      const keepalive = every(broker.clock, KEEPALIVE_MS, () => send(stream.write(': keepalive\n\n')));
      send(stream.writeSSE({ event: 'hello', data: principal.tenantName }));
      await ended;
      flush.cancel();
      keepalive.cancel();
      stopLogs();
      unsubscribe();
    });
  });

  return app;
}

/** Log lines as the live log pane appends them, and how many were left out. */
function logFragment(lines: readonly RuntimeLogLine[], skipped: number): Html {
  return html`${lines.map(
    (l) =>
      html`<div class="log ${l.stream}"><span class="at">${time(l.atMs).slice(11)}</span> <span class="fn">${l.app}.${l.functionName}</span> ${l.text}</div>`,
  )}${skipped > 0 ? html`<div class="log skipped">… ${skipped} lines not shown</div>` : ''}`;
}
