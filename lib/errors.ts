/**
 * Error types shared by every folder. Each carries a stable `code` so that the HTTP layer and the CLI can map it
 * (to a problem+json status, to an exit code) without string matching.
 */
export class GpubrokerError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Input that does not meet its contract. `field` names what was wrong (a dotted path, a CLI flag or a column). */
export class ValidationError extends GpubrokerError {
  constructor(
    readonly field: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super('invalid_input', `${field}: ${message}`, options);
  }
}

/** A data file (catalog, trace, scenario) that cannot be read: names the file, the 1-based line and the field. */
export class DataFileError extends GpubrokerError {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly field: string | undefined,
    message: string,
    options?: ErrorOptions,
  ) {
    const where = [
      file,
      line === undefined ? undefined : `line ${line}`,
      field === undefined ? undefined : `field ${field}`,
    ]
      .filter((part) => part !== undefined)
      .join(', ');
    super('bad_data_file', `${where}: ${message}`, options);
  }
}

export class NotFoundError extends GpubrokerError {
  constructor(message: string) {
    super('not_found', message);
  }
}

/** A schema issue as validators report it (zod's shape), without depending on the validator here. */
export interface SchemaIssue {
  readonly path: readonly PropertyKey[];
  readonly message: string;
  readonly code?: string;
  /** Of an `unrecognized_keys` issue: the keys the object may not have. */
  readonly keys?: readonly string[];
}

/**
 * The dotted field an issue is about, and what is wrong with it. Validators report an unknown key on the object that
 * holds it; the field named is the key itself (`functions.square.gpus: unknown field`).
 */
export function issueField(issue: SchemaIssue | undefined): { field: string; message: string } {
  const path = (issue?.path ?? []).map((part) => String(part));
  const unknownKey = issue?.code === 'unrecognized_keys' ? issue.keys?.[0] : undefined;
  if (unknownKey !== undefined) return { field: [...path, unknownKey].join('.'), message: 'unknown field' };
  return { field: path.join('.'), message: issue?.message ?? 'invalid' };
}

/** The first issue of a failed validation as a ValidationError naming the dotted field under `prefix`. */
export function validationErrorFromIssues(prefix: string, issues: readonly SchemaIssue[]): ValidationError {
  const { field: path, message } = issueField(issues[0]);
  const field = [prefix, path].filter((part) => part.length > 0).join('.');
  return new ValidationError(field || 'input', message);
}

/**
 * A process cannot start as configured (port in use, damaged data directory, unreachable provider): one line that
 * names the setting and what to do. The CLI prints it and exits 1; nothing was left running or written.
 */
export class StartupError extends GpubrokerError {
  constructor(
    readonly setting: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super('startup_failed', `${setting}: ${message}`, options);
  }
}
