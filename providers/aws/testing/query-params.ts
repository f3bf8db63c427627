/**
 * The parameters of an EC2 Query request (a form-urlencoded POST body), read the way EC2 reads them: lists are
 * flattened and numbered from 1 (`InstanceId.1`, `Filter.2.Value.1`), structures are dotted
 * (`Placement.AvailabilityZone`), and a list of structures numbers each one (`TagSpecification.1.Tag.1.Key`).
 * See https://docs.aws.amazon.com/AWSEC2/latest/APIReference/Query-Requests.html
 */
export class QueryParams {
  private constructor(
    private readonly map: ReadonlyMap<string, string>,
    private readonly prefix: string,
  ) {}

  static parse(body: string): QueryParams {
    return new QueryParams(new Map(new URLSearchParams(body)), '');
  }

  get(name: string): string | undefined {
    return this.map.get(this.prefix + name);
  }

  /** A numbered list of scalars, `Name.1`, `Name.2`, … up to the first gap. */
  strings(name: string): string[] {
    const values: string[] = [];
    for (let i = 1; ; i++) {
      const value = this.map.get(`${this.prefix}${name}.${i}`);
      if (value === undefined) return values;
      values.push(value);
    }
  }

  /** A numbered list of structures, `Name.1.Field`, `Name.2.Field`, … up to the first gap. */
  structs(name: string): QueryParams[] {
    const structs: QueryParams[] = [];
    for (let i = 1; ; i++) {
      const prefix = `${this.prefix}${name}.${i}.`;
      if (![...this.map.keys()].some((key) => key.startsWith(prefix))) return structs;
      structs.push(new QueryParams(this.map, prefix));
    }
  }

  /** Every parameter as `[name, value]`, sorted: a request's identity for idempotency checks. */
  entries(): [string, string][] {
    return [...this.map.entries()]
      .filter(([key]) => key.startsWith(this.prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }
}
