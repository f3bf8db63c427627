import type { Clock } from './clock.ts';
import type { Random } from './random.ts';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'; // Crockford base32, lower case

/**
 * Makes ids like `lease_01jd3k9x7q2m4t8v5c`: a prefix naming the kind, 10 characters of clock time (so ids sort by
 * creation) and 10 of randomness from the seeded generator (so a simulation's ids are reproducible).
 */
export class IdGenerator {
  /** Prefixes checked already, each with its `_`. */
  private readonly prefixes = new Map<string, string>();
  /** The time part of the last id's millisecond (a simulation makes many ids per millisecond of its clock). */
  private lastMs = Number.NaN;
  private lastTimePart = '';

  constructor(
    private readonly clock: Clock,
    private readonly random: Random,
  ) {}

  next(prefix: string): string {
    let head = this.prefixes.get(prefix);
    if (head === undefined) {
      if (!/^[a-z][a-z0-9]*$/.test(prefix))
        throw new RangeError(`id prefix must be lower-case alphanumeric: ${prefix}`);
      head = `${prefix}_`;
      this.prefixes.set(prefix, head);
    }
    const now = this.clock.now();
    if (now !== this.lastMs) {
      let time = now;
      let timePart = '';
      for (let i = 0; i < 10; i++) {
        timePart = ALPHABET[time % 32] + timePart;
        time = Math.floor(time / 32);
      }
      this.lastMs = now;
      this.lastTimePart = timePart;
    }
    let id = head + this.lastTimePart;
    for (let i = 0; i < 10; i++) id += ALPHABET[this.random.nextUint32() % 32];
    return id;
  }
}
