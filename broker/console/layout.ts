/**
 * The console's page frame: navigation for the principal's role, the live connection (server-sent events, through
 * htmx's SSE extension) and the main area that re-renders itself when its topics change. Every value is escaped by
 * hono's `html` template; only our own fragments are trusted.
 */
import { html } from 'hono/html';
import type { HtmlEscapedString } from 'hono/utils/html';
import type { Principal } from '../tokens.ts';

export type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

/** What changes a page shows: the console's event stream names these (feed.ts). */
export type Topic = 'fleet' | 'leases' | 'functions' | 'plans' | 'money' | 'policy';

export interface PageDefinition {
  readonly path: string;
  readonly title: string;
  readonly operatorOnly: boolean;
  /** The main area is fetched again when any of these change. */
  readonly topics: readonly Topic[];
}

export const PAGES = {
  fleet: { path: '/fleet', title: 'Fleet', operatorOnly: true, topics: ['fleet'] },
  leases: { path: '/leases', title: 'Leases', operatorOnly: false, topics: ['leases'] },
  functions: { path: '/functions', title: 'Functions', operatorOnly: false, topics: ['functions'] },
  plans: { path: '/plans', title: 'Plans', operatorOnly: true, topics: ['plans'] },
  money: { path: '/money', title: 'Money', operatorOnly: false, topics: ['money'] },
  policy: { path: '/policy', title: 'Policy', operatorOnly: true, topics: ['policy'] },
} as const satisfies Record<string, PageDefinition>;

export type PageName = keyof typeof PAGES;

export function visiblePages(principal: Principal): PageName[] {
  return (Object.keys(PAGES) as PageName[]).filter(
    (name) => principal.role === 'operator' || !PAGES[name].operatorOnly,
  );
}

const head = (title: string) => html`<head>
  <meta charset="utf-8" />
  <meta name="viewport" content="width=device-width, initial-scale=1" />
  <title>${title} · gpubroker</title>
  <link rel="stylesheet" href="/console/assets/console.css" />
  <link rel="icon" href="data:," />
</head>`;

/** A whole page: frame plus main area (`main` is also served alone, for htmx's refreshes). */
export function layout(options: {
  readonly page: PageName;
  readonly principal: Principal;
  /** The URL the main area is fetched from again (the page's own, with its query). */
  readonly refreshUrl: string;
  readonly main: Html;
  /** Shown beside the main area and kept across its refreshes (live logs). */
  readonly aside?: Html;
}): Html {
  const { page, principal } = options;
  const definition = PAGES[page];
  const trigger = definition.topics.map((t) => `sse:${t}`).join(', ');
  return html`<!doctype html>
<html lang="en">
${head(definition.title)}
<body hx-ext="sse" sse-connect="/console/events">
  <header>
    <a class="brand" href="/">gpubroker</a>
    <nav>
      ${visiblePages(principal).map(
        (name) =>
          html`<a href="${PAGES[name].path}" ${name === page ? html`aria-current="page"` : ''}>${PAGES[name].title}</a>`,
      )}
    </nav>
    <span class="who" data-testid="who">${principal.tenantName} · ${principal.role}</span>
    <span class="live" title="Live updates">live</span>
    <form method="post" action="/logout"><button type="submit">Log out</button></form>
  </header>
  <div class="body">
    <main id="main" hx-get="${options.refreshUrl}" hx-trigger="${trigger}" hx-swap="innerHTML">${options.main}</main>
    ${options.aside ? html`<aside>${options.aside}</aside>` : ''}
  </div>
  <script src="/console/assets/htmx.min.js"></script>
  <script src="/console/assets/sse.js"></script>
</body>
</html>`;
}

/** The login page: a token field, and why the last try failed. */
export function loginPage(options: { readonly error?: string; readonly next: string }): Html {
  return html`<!doctype html>
<html lang="en">
${head('Log in')}
<body class="login">
  <form method="post" action="/login" class="login-box">
    <h1>gpubroker</h1>
    <p>Log in with an API token: the operator token (<code>.gpubroker/operator-token</code>) or one made by
      <code>gpubroker token create</code>.</p>
    ${options.error ? html`<p class="error" role="alert" data-testid="login-error">${options.error}</p>` : ''}
    <label>Token <input type="password" name="token" autocomplete="off" autofocus required /></label>
    <input type="hidden" name="next" value="${options.next}" />
    <button type="submit">Log in</button>
  </form>
</body>
</html>`;
}

/** A page a tenant may not see, or an API error, said in the main area. */
export function notice(title: string, detail: string): Html {
  return html`<h1>${title}</h1><p class="notice">${detail}</p>`;
}

/** A table with a header row; `empty` is shown when there are no rows. */
export function table(headers: readonly string[], rows: readonly Html[], empty: string): Html {
  if (rows.length === 0) return html`<p class="empty">${empty}</p>`;
  return html`<table>
  <thead><tr>${headers.map((h) => html`<th>${h}</th>`)}</tr></thead>
  <tbody>${rows}</tbody>
</table>`;
}

/** Headline figures above a page. */
export function cards(items: readonly (readonly [label: string, value: string])[]): Html {
  return html`<section class="cards">${items.map(
    ([label, value]) =>
      html`<div class="card"><div class="value">${value}</div><div class="label">${label}</div></div>`,
  )}</section>`;
}

export function badge(text: string, tone: 'ok' | 'warn' | 'bad' | 'idle'): Html {
  return html`<span class="badge ${tone}">${text}</span>`;
}
