/**
 * Images defined in code, as in Modal: what a function's containers run on.
 *
 *   const image = Image.node20().npmInstall(['sharp@0.33']).env({ SHARP_CONCURRENCY: '1' });
 *   export const thumbnail = app.function({ gpu: 'L4', image }, async (png: Uint8Array) => {
 *     const { default: sharp } = await import(`sharp`);   // inside: it need not be installed where you deploy
 *     …
 *   });
 *
 * The base (`node20`) is the machine's system directories, read-only, and its Node 20. `npmInstall` packages are
 * installed once by `gpubroker run|deploy` where you run it (`npm install`), uploaded to the broker as a layer named
 * by the hash of the recipe, fetched once by each agent and shared read-only by every container that uses it, at
 * /app/node_modules. An unchanged list reuses the layer; a changed one builds a new layer. They stay out of the app's
 * bundle (esbuild marks them external), so native packages work.
 */

/** An image as it travels: the base, the npm packages in order, and environment variables. */
export interface ImageSpec {
  readonly base: 'node20';
  readonly npm: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

/** Immutable: each step returns a new image. */
export class Image {
  private constructor(readonly spec: ImageSpec) {}

  /** The machine's system directories and Node 20, nothing installed. */
  static node20(): Image {
    return new Image({ base: 'node20', npm: [], env: {} });
  }

  /** npm packages, as `npm install` takes them: `sharp@0.33`, `@scope/pkg@^1`, or a local `.tgz` or directory. */
  npmInstall(packages: readonly string[]): Image {
    for (const [i, spec] of packages.entries())
      if (typeof spec !== 'string' || spec.trim() === '' || /\s/.test(spec))
        throw new TypeError(
          `npmInstall: packages[${i}] must be a package spec without spaces, got ${JSON.stringify(spec)}`,
        );
    return new Image({ ...this.spec, npm: [...this.spec.npm, ...packages] });
  }

  /** Environment variables of every container of the image (the app's secrets, if named alike, win). */
  env(vars: Readonly<Record<string, string>>): Image {
    for (const [name, value] of Object.entries(vars)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
        throw new TypeError(`env: "${name}" is not a variable name`);
      if (typeof value !== 'string') throw new TypeError(`env: ${name} must be a string`);
    }
    return new Image({ ...this.spec, env: { ...this.spec.env, ...vars } });
  }

  toJSON(): ImageSpec {
    return this.spec;
  }
}
