/**
 * The console's static files, served from the package itself (no CDN: the console works with no network beyond
 * the broker): htmx and its SSE extension from their npm packages, our stylesheet from this folder. Read once and
 * cached in memory; a fixed list, so no path from a request ever reaches the file system.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);

const FILES: Record<string, { readonly path: () => string; readonly type: string }> = {
  'htmx.min.js': { path: () => require.resolve('htmx.org/dist/htmx.min.js'), type: 'text/javascript' },
  'sse.js': { path: () => require.resolve('htmx-ext-sse/dist/sse.js'), type: 'text/javascript' },
  'console.css': {
    path: () => fileURLToPath(new URL('./assets/console.css', import.meta.url)),
    type: 'text/css',
  },
};

const cache = new Map<string, Buffer>();

/** The file and its content type, or undefined for a name not on the list. */
export function consoleAsset(name: string): { readonly body: Buffer; readonly type: string } | undefined {
  const file = Object.hasOwn(FILES, name) ? FILES[name] : undefined;
  if (!file) return undefined;
  let body = cache.get(name);
  if (!body) {
    body = readFileSync(file.path());
    cache.set(name, body);
  }
  return { body, type: `${file.type}; charset=utf-8` };
}
