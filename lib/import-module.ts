/**
 * Imports a module the user names by path (a `--scenario` module), TypeScript included. The launcher
 * (bin/gpubroker.js) may run the command line from its build, with no TypeScript loader: it then leaves a function
 * that registers one, called here before the first such import. Elsewhere (tsx, the test runner) there is none.
 */
const REGISTER_TYPESCRIPT = Symbol.for('gpubroker.registerTypeScript');

export async function importModule(url: string): Promise<unknown> {
  const slot = globalThis as { [REGISTER_TYPESCRIPT]?: () => Promise<unknown> };
  const register = slot[REGISTER_TYPESCRIPT];
  if (register && /\.[cm]?tsx?$/.test(new URL(url).pathname)) {
    delete slot[REGISTER_TYPESCRIPT];
    await register();
  }
  return import(url);
}
