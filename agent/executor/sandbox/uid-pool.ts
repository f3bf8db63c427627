/**
 * A user id per running container, from a range no account uses (200000–249999 by default): a container's files
 * and processes belong to it alone, so one container cannot signal another or read its scratch directory even if
 * a namespace were to leak. Process-wide, so that every executor of an agent host draws from one pool.
 */
export class UidPool {
  private readonly used = new Set<number>();

  constructor(
    readonly first = 200_000,
    readonly size = 50_000,
  ) {}

  /** The lowest free id; throws when every one is in use. */
  take(): number {
    for (let uid = this.first; uid < this.first + this.size; uid++) {
      if (this.used.has(uid)) continue;
      this.used.add(uid);
      return uid;
    }
    throw new Error(`no free container user id in ${this.first}–${this.first + this.size - 1}`);
  }

  give(uid: number): void {
    this.used.delete(uid);
  }
}

export const containerUids = new UidPool();
