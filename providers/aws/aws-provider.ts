/**
 * Amazon EC2 behind the Provider contract, on the official SDK (`@aws-sdk/client-ec2`), one EC2Client per region.
 *
 * - offerings: the catalog's AWS offerings in the configured regions, available in the zones where EC2 offers the
 *   instance type (DescribeInstanceTypeOfferings) and, for spot, has a spot price (DescribeSpotPriceHistory, which
 *   also gives the spot price), minus zones that recently answered InsufficientInstanceCapacity. On-demand prices
 *   come from the Price List Query API (on-demand-prices.ts), read again every `priceRefreshMs`.
 * - provision: RunInstances with MinCount = MaxCount = count (all or nothing, one zone), the zones tried in turn;
 *   idempotent through the RunInstances ClientToken (derived from the key) and the `gpubroker:key` tag, which is
 *   looked up first so that a key used before returns its instances.
 * - terminate: TerminateInstances; ids EC2 does not know are skipped.
 * - list: DescribeInstances filtered by tags, every page.
 * - events: the inventory is polled on the Clock and diffed (see instance-tracker.ts); spot interruptions are read
 *   from the spot request status (DescribeSpotInstanceRequests), the one place EC2 shows the two-minute notice to a
 *   control-plane client.
 * - errors: see aws-errors.ts; throttled calls are retried with exponential backoff (the SDK's own retries are off).
 */
import {
  DescribeAvailabilityZonesCommand,
  DescribeInstancesCommand,
  DescribeInstanceTypeOfferingsCommand,
  DescribeSpotInstanceRequestsCommand,
  DescribeSpotPriceHistoryCommand,
  EC2Client,
  type Instance as Ec2Instance,
  type Filter,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { PricingClient } from '@aws-sdk/client-pricing';
import { BackoffExhausted, withBackoff } from '../../lib/backoff.ts';
import type { Clock, TimerHandle } from '../../lib/clock.ts';
import { type Micros, micros } from '../../lib/money.ts';
import { startupScriptFor } from '../agent-bootstrap.ts';
import { loadCatalog } from '../catalog/load-catalog.ts';
import { type Offering, offeringId } from '../catalog/offering.ts';
import { regionGroupOf } from '../catalog/region-groups.ts';
import { EventHub } from '../event-hub.ts';
import { ListPrices } from '../list-prices.ts';
import { PriceChanges } from '../price-changes.ts';
import type {
  EventsOptions,
  Instance,
  ListFilter,
  OfferingQuote,
  Provider,
  ProviderEvent,
  ProvisionRequest,
  Tags,
} from '../provider.ts';
import {
  InsufficientCapacityError,
  InvalidRequestError,
  ProviderError,
  ProviderUnavailableError,
  ThrottledError,
} from '../provider-errors.ts';
import { usdPriceMicros } from '../usd-price.ts';
import { type ErrorContext, ec2ErrorCode, toProviderError, VENDOR } from './aws-errors.ts';
import { type AwsProviderOptions, type ResolvedAwsOptions, resolveAwsOptions } from './aws-options.ts';
import { clientToken } from './client-token.ts';
import {
  type Observation,
  OWN_TAGS,
  observationOf,
  stateOf,
  TAG_BROKER,
  TAG_KEY,
  TAG_OFFERING,
} from './ec2-instance.ts';
import { InstanceTracker } from './instance-tracker.ts';
import { PRICING_REGION, readOnDemandPrices } from './on-demand-prices.ts';

/** The most instances one provision asks for (RunInstances' own limit depends on the account). */
const MAX_COUNT = 1_000;
/** EC2 allows 50 tags per resource; the adapter sets three of its own. */
const MAX_USER_TAGS = 50 - OWN_TAGS.size;
const INSTANCE_ID = /^i-[0-9a-f]{8}(?:[0-9a-f]{9})?$/;
/** Zones and spot prices older than this are fetched again before a provision. */
const MARKET_MAX_AGE_MS = 300_000;
/** EC2 gives a spot instance two minutes between the interruption notice and the shutdown. */
const SPOT_WARNING_MS = 120_000;
/**
 * Spot request status codes that mean "this instance is being reclaimed" while it still runs
 * (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-request-status.html): with interruption behaviour
 * `terminate` EC2 sets `instance-terminated-no-capacity` (or `-by-price`) at the notice, not `marked-for-termination`.
 */
const INTERRUPTION_CODES: ReadonlySet<string> = new Set([
  'marked-for-termination',
  'marked-for-stop',
  'instance-terminated-no-capacity',
  'instance-terminated-by-price',
  'instance-stopped-no-capacity',
  'instance-stopped-by-price',
]);
const LIVE_STATES = ['pending', 'running', 'shutting-down', 'stopping', 'stopped'];
const SPOT_PRODUCT = 'Linux/UNIX';

/** The SDK types instance types as a closed union; the catalog's names are checked by EC2 itself. */
type Ec2InstanceType = NonNullable<RunInstancesCommandInput['InstanceType']>;

/** What EC2 sells in a region now: zones per instance type, spot prices per instance type and zone. */
interface RegionMarket {
  readonly atMs: number;
  readonly zones: ReadonlyMap<string, readonly string[]>;
  readonly spot: ReadonlyMap<string, ReadonlyMap<string, Micros>>;
}

/** Builds the adapter: checks the options, then the credentials once (one call per region), then starts polling. */
export async function createAwsProvider(options: AwsProviderOptions): Promise<AwsProvider> {
  const catalog = options.offerings ?? loadCatalog();
  const provider = new AwsProvider(resolveAwsOptions(options, catalog), catalog);
  try {
    await provider.verifyAccess();
  } catch (error) {
    await provider.close();
    throw error;
  }
  provider.startPolling();
  return provider;
}

export class AwsProvider implements Provider {
  readonly vendor = VENDOR;
  private readonly clock: Clock;
  private readonly clients = new Map<string, EC2Client>();
  /** Offerings of the configured regions, by id. */
  private readonly catalog = new Map<string, Offering>();
  /** Every AWS offering of the catalog, to recognise instances found by tag. */
  private readonly anyRegion = new Map<string, Offering>();
  private readonly hub = new EventHub<ProviderEvent>();
  private readonly tracker: InstanceTracker;
  private readonly zonesByRegion = new Map<string, readonly string[]>();
  private readonly markets = new Map<string, RegionMarket>();
  /** `offeringId@zone` → until when it counts as out of stock. */
  private readonly stockouts = new Map<string, number>();
  /** Keys this process provisioned with, and their parameters: catches reuse across regions too. */
  private readonly keys = new Map<string, string>();
  private readonly priceChanges = new PriceChanges(VENDOR);
  private readonly pricing: PricingClient | undefined;
  /** On-demand list prices (spot prices are part of each region's market). */
  private readonly listPrices: ListPrices;
  private readonly stopping = new AbortController();
  private pollTimer: TimerHandle | undefined;
  private polling: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly options: ResolvedAwsOptions,
    catalog: readonly Offering[],
  ) {
    this.clock = options.clock;
    for (const o of options.offerings) this.catalog.set(o.id, o);
    for (const o of catalog) if (o.vendor === VENDOR) this.anyRegion.set(o.id, o);
    this.tracker = new InstanceTracker(this.clock, (event) => this.hub.publish(event));
    for (const region of options.regions)
      this.clients.set(
        region,
        new EC2Client({
          region,
          ...(options.endpoint ? { endpoint: options.endpoint } : {}),
          ...(options.credentials ? { credentials: options.credentials } : {}),
          // Retries are ours (backoff on the Clock, typed errors), so the SDK makes one attempt per call.
          maxAttempts: 1,
          requestHandler: {
            requestTimeout: options.requestTimeoutMs,
            connectionTimeout: Math.min(options.requestTimeoutMs, 5_000),
            throwOnRequestTimeout: true,
          },
        }),
      );
    const { pricing } = options;
    if ('endpoint' in pricing)
      this.pricing = new PricingClient({
        region: PRICING_REGION,
        ...(pricing.endpoint ? { endpoint: pricing.endpoint } : {}),
        ...(options.credentials ? { credentials: options.credentials } : {}),
        // A failed read is tried again at the next refresh; it never holds up offerings for long.
        maxAttempts: 1,
        requestHandler: {
          requestTimeout: options.requestTimeoutMs,
          connectionTimeout: Math.min(options.requestTimeoutMs, 5_000),
          throwOnRequestTimeout: true,
        },
      });
    const onDemand = options.offerings.filter((o) => o.capacityType === 'on-demand');
    const client = this.pricing;
    this.listPrices = new ListPrices({
      vendor: VENDOR,
      clock: this.clock,
      offerings: onDemand,
      read: client ? () => readOnDemandPrices(client, onDemand, this.stopping.signal) : undefined,
      ...('off' in pricing ? { off: pricing.off } : {}),
      refreshMs: options.priceRefreshMs,
      log: options.log,
    });
  }

  /**
   * Loads the credentials and makes one call per region (DescribeAvailabilityZones, which also gives the zones),
   * so that missing or refused credentials fail at start with one clear ProviderUnavailableError.
   */
  async verifyAccess(): Promise<void> {
    await Promise.all(
      this.options.regions.map(async (region) => {
        const client = this.client(region);
        try {
          await client.config.credentials();
        } catch (error) {
          throw toProviderError(error, { region });
        }
        const answer = await this.ec2(region, (c, abortSignal) =>
          c.send(new DescribeAvailabilityZonesCommand({}), { abortSignal }),
        );
        this.zonesByRegion.set(
          region,
          (answer.AvailabilityZones ?? []).flatMap((z) =>
            z.ZoneName && z.ZoneType !== 'local-zone' ? [z.ZoneName] : [],
          ),
        );
      }),
    );
  }

  /** Starts the inventory poll behind `events()`; createAwsProvider calls it. */
  startPolling(): void {
    if (this.closed || this.pollTimer || this.polling) return;
    this.pollTimer = this.clock.setTimer(this.clock.now() + this.options.pollIntervalMs, () => {
      this.pollTimer = undefined;
      this.polling = this.poll().finally(() => {
        this.polling = undefined;
        this.startPolling();
      });
    });
  }

  async offerings(): Promise<OfferingQuote[]> {
    this.assertOpen();
    const [settled] = await Promise.all([
      Promise.allSettled(this.options.regions.map((region) => this.fetchMarket(region))),
      this.listPrices.refresh(),
    ]);
    const failures: ProviderError[] = [];
    settled.forEach((result, index) => {
      if (result.status === 'rejected')
        failures.push(readOnlyError(result.reason, this.options.regions[index] ?? ''));
    });
    const throttled = failures.find((e) => e instanceof ThrottledError);
    if (throttled) throw throttled;
    if (failures.length === this.options.regions.length && failures[0]) throw failures[0];

    const quotes = [...this.catalog.values()].map((o) => this.quote(o, this.markets.get(o.region)));
    for (const event of this.priceChanges.note(quotes, this.clock.now())) this.hub.publish(event);
    return quotes;
  }

  async provision(request: ProvisionRequest): Promise<Instance[]> {
    this.assertOpen();
    const offering = this.validate(request);
    // A bad agent bootstrap fails here, before anything is asked of EC2.
    const userData = this.userDataOf(request);
    const { region } = offering;
    const fingerprint = fingerprintOf(request);
    const earlier = this.keys.get(request.idempotencyKey);
    if (earlier !== undefined && earlier !== fingerprint) throw reusedKey(request.idempotencyKey);

    const found = await this.describe(region, [
      tagFilter(TAG_BROKER, this.options.brokerId),
      tagFilter(TAG_KEY, request.idempotencyKey),
    ]);
    if (found.length > 0) return this.replay(request, found);

    const market = await this.marketOf(region);
    const zones = this.zonesToTry(offering, market, request.zone);
    const token = clientToken(this.options.brokerId, request.idempotencyKey);
    let lastShortage: InsufficientCapacityError | undefined;
    for (const zone of zones) {
      try {
        const answer = await this.ec2(
          region,
          (c, abortSignal) =>
            c.send(new RunInstancesCommand(this.launchInput(offering, request, zone, token, userData)), {
              abortSignal,
            }),
          { offeringId: offering.id, requestedVcpus: request.count * offering.vcpus },
        );
        this.keys.set(request.idempotencyKey, fingerprint);
        const price = this.launchPrice(offering, zone, market);
        return this.observations(region, answer.Instances ?? []).map((o) =>
          // The tags are the ones just sent, whether or not EC2 echoes them in the RunInstances answer.
          this.tracker.observe(
            {
              ...o,
              tags: { ...(request.tags ?? {}) },
              offeringId: offering.id,
              idempotencyKey: request.idempotencyKey,
            },
            offering,
            price,
          ),
        );
      } catch (error) {
        if (error instanceof InsufficientCapacityError) {
          this.stockouts.set(`${offering.id}@${zone}`, this.clock.now() + this.options.capacityRetryAfterMs);
          lastShortage = error;
          continue;
        }
        // The token was used (an earlier attempt launched, and DescribeInstances did not show it yet).
        if (error instanceof InvalidRequestError && error.field === 'idempotencyKey') {
          const launched = await this.describe(region, [{ Name: 'client-token', Values: [token] }]);
          if (launched.length > 0) return this.replay(request, launched);
        }
        throw error;
      }
    }
    throw new InsufficientCapacityError(
      VENDOR,
      offering.id,
      this.options.capacityRetryAfterMs,
      `no zone of ${region} has ${request.count} × ${offering.instanceType} (${offering.capacityType}) free; tried ${zones.join(', ')}${
        lastShortage ? ` (${lastShortage.message})` : ''
      }`,
    );
  }

  async terminate(instanceIds: readonly string[]): Promise<void> {
    this.assertOpen();
    // Ids that are not EC2 instance ids cannot name an instance; EC2 would reject the whole call for them.
    const ids = [...new Set(instanceIds)].filter((id) => INSTANCE_ID.test(id));
    const byRegion = new Map<string, string[]>();
    for (const id of ids) {
      const known = this.tracker.regionOf(id);
      for (const region of known ? [known] : this.options.regions) {
        const list = byRegion.get(region) ?? [];
        list.push(id);
        byRegion.set(region, list);
      }
    }
    try {
      await Promise.all([...byRegion].map(([region, list]) => this.terminateIn(region, list)));
    } catch (error) {
      throw readOnlyError(error, undefined);
    }
  }

  async list(filter: ListFilter = {}): Promise<Instance[]> {
    this.assertOpen();
    const wanted = Object.entries(filter.tags ?? {});
    const filters: Filter[] = [
      tagFilter(TAG_BROKER, this.options.brokerId),
      ...wanted.map(([k, v]) => tagFilter(k, v)),
    ];
    if (!filter.includeTerminated) filters.push({ Name: 'instance-state-name', Values: LIVE_STATES });
    try {
      const perRegion = await Promise.all(
        this.options.regions.map((region) => this.describe(region, filters)),
      );
      return perRegion
        .flat()
        .filter((o) => wanted.every(([k, v]) => o.allTags[k] === v))
        .map((o) => this.snapshot(o))
        .filter((i) => filter.includeTerminated || i.state !== 'terminated');
    } catch (error) {
      throw readOnlyError(error, undefined);
    }
  }

  events(options: EventsOptions = {}): AsyncIterable<ProviderEvent> {
    return this.hub.iterate(options.signal);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pollTimer?.cancel();
    this.stopping.abort();
    await this.polling;
    for (const client of this.clients.values()) client.destroy();
    this.pricing?.destroy();
    this.hub.close();
  }

  // ---- provision ----------------------------------------------------------------------------------------------

  /**
   * The agent's start-up script as RunInstances takes it: base64 (the SDK sends UserData as given; EC2 wants base64
   * of at most 16 KB raw). Undefined without `request.agent`. The same request gives the same bytes, so a repeated
   * RunInstances under the same ClientToken matches the first.
   */
  private userDataOf(request: ProvisionRequest): string | undefined {
    const script = startupScriptFor(VENDOR, request.agent);
    return script === undefined ? undefined : Buffer.from(script, 'utf8').toString('base64');
  }

  private validate(request: ProvisionRequest): Offering {
    if (typeof request !== 'object' || request === null)
      throw new InvalidRequestError(VENDOR, 'request', 'must be an object');
    const offering = this.catalog.get(request.offeringId);
    if (!offering)
      throw new InvalidRequestError(
        VENDOR,
        'offeringId',
        `"${request.offeringId}" is not sold in the configured regions (${this.options.regions.join(', ')})`,
      );
    if (!Number.isSafeInteger(request.count) || request.count < 1 || request.count > MAX_COUNT)
      throw new InvalidRequestError(
        VENDOR,
        'count',
        `must be an integer from 1 to ${MAX_COUNT}, got ${request.count}`,
      );
    if (typeof request.idempotencyKey !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(request.idempotencyKey))
      throw new InvalidRequestError(VENDOR, 'idempotencyKey', 'must be 1–255 printable ASCII characters');
    if (request.zone !== undefined && !(this.zonesByRegion.get(offering.region) ?? []).includes(request.zone))
      throw new InvalidRequestError(VENDOR, 'zone', `"${request.zone}" is not a zone of ${offering.region}`);
    const tags = Object.entries(request.tags ?? {});
    if (tags.length > MAX_USER_TAGS)
      throw new InvalidRequestError(
        VENDOR,
        'tags',
        `at most ${MAX_USER_TAGS} tags (EC2 allows 50 per instance)`,
      );
    for (const [key, value] of tags)
      if (
        typeof value !== 'string' ||
        key.length === 0 ||
        key.length > 128 ||
        value.length > 256 ||
        key.toLowerCase().startsWith('aws:') ||
        OWN_TAGS.has(key)
      )
        throw new InvalidRequestError(
          VENDOR,
          `tags.${key}`,
          'keys are 1–128 characters, not aws:… nor the adapter’s own; values at most 256 characters',
        );
    return offering;
  }

  /** The instances a key launched before: the same ones when the parameters match, an error when they do not. */
  private replay(request: ProvisionRequest, found: readonly Observation[]): Instance[] {
    const requested = Object.entries(request.tags ?? {}).sort(byKey);
    const same =
      found.length === request.count &&
      found.every(
        (o) =>
          o.offeringId === request.offeringId &&
          (request.zone === undefined || o.zone === request.zone) &&
          JSON.stringify(Object.entries(o.tags).sort(byKey)) === JSON.stringify(requested),
      );
    if (!same) throw reusedKey(request.idempotencyKey);
    this.keys.set(request.idempotencyKey, fingerprintOf(request));
    return found.map((o) => this.snapshot(o));
  }

  /** The zone asked for, or every zone offering the type: unblocked ones first, then (spot) the cheapest first. */
  private zonesToTry(offering: Offering, market: RegionMarket, zone: string | undefined): string[] {
    const offered = market.zones.get(offering.instanceType) ?? [];
    if (zone !== undefined) {
      if (!offered.includes(zone))
        throw new InvalidRequestError(VENDOR, 'zone', `${offering.instanceType} is not offered in ${zone}`);
      return [zone];
    }
    if (offered.length === 0)
      throw new InsufficientCapacityError(
        VENDOR,
        offering.id,
        this.options.capacityRetryAfterMs,
        `${offering.instanceType} is not offered in any zone of ${offering.region}`,
      );
    const now = this.clock.now();
    const prices = offering.capacityType === 'spot' ? market.spot.get(offering.instanceType) : undefined;
    const rank = (z: string) => [
      this.stockedOut(offering.id, z, now) ? 1 : 0,
      prices ? (prices.get(z) ?? Number.MAX_SAFE_INTEGER) : 0,
    ];
    return [...offered].sort((a, b) => {
      const [ra, rb] = [rank(a), rank(b)];
      return (ra[0] ?? 0) - (rb[0] ?? 0) || (ra[1] ?? 0) - (rb[1] ?? 0) || (a < b ? -1 : a > b ? 1 : 0);
    });
  }

  private launchInput(
    offering: Offering,
    request: ProvisionRequest,
    zone: string,
    token: string,
    userData: string | undefined,
  ): RunInstancesCommandInput {
    const launch = this.options.launch.get(offering.region) ?? {};
    const template = launch.launchTemplate;
    const subnet = launch.subnetIds?.[zone];
    const profile = launch.instanceProfile;
    const tags = [
      { Key: TAG_BROKER, Value: this.options.brokerId },
      { Key: TAG_OFFERING, Value: offering.id },
      { Key: TAG_KEY, Value: request.idempotencyKey },
      ...Object.entries(request.tags ?? {}).map(([Key, Value]) => ({ Key, Value })),
    ];
    return {
      ...(launch.imageId ? { ImageId: launch.imageId } : {}),
      ...(template
        ? {
            LaunchTemplate: {
              ...(template.id ? { LaunchTemplateId: template.id } : { LaunchTemplateName: template.name }),
              ...(template.version ? { Version: template.version } : {}),
            },
          }
        : {}),
      InstanceType: offering.instanceType as Ec2InstanceType,
      MinCount: request.count,
      MaxCount: request.count,
      ClientToken: token,
      ...(subnet ? { SubnetId: subnet } : { Placement: { AvailabilityZone: zone } }),
      ...(launch.securityGroupIds?.length ? { SecurityGroupIds: [...launch.securityGroupIds] } : {}),
      ...(launch.keyName ? { KeyName: launch.keyName } : {}),
      ...(profile
        ? { IamInstanceProfile: profile.startsWith('arn:') ? { Arn: profile } : { Name: profile } }
        : {}),
      ...(offering.capacityType === 'spot'
        ? {
            InstanceMarketOptions: {
              MarketType: 'spot',
              SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' },
            },
          }
        : {}),
      // Replaces a launch template's user data: the instance starts the agent instead.
      ...(userData === undefined ? {} : { UserData: userData }),
      // A shutdown from inside the instance ends it (and its bill) instead of leaving it stopped.
      InstanceInitiatedShutdownBehavior: 'terminate',
      TagSpecifications: [{ ResourceType: 'instance', Tags: tags }],
    };
  }

  private launchPrice(offering: Offering, zone: string, market: RegionMarket | undefined): Micros {
    if (offering.capacityType !== 'spot') return this.listPrices.priceOf(offering);
    return market?.spot.get(offering.instanceType)?.get(zone) ?? offering.microsPerHour;
  }

  // ---- terminate ----------------------------------------------------------------------------------------------

  /** TerminateInstances for ids of one region, dropping the ids EC2 says it does not know and trying again. */
  private async terminateIn(region: string, ids: readonly string[]): Promise<void> {
    let remaining = [...ids];
    while (remaining.length > 0) {
      const batch = remaining;
      const answer = await this.ec2(region, async (c, abortSignal) => {
        try {
          return await c.send(new TerminateInstancesCommand({ InstanceIds: batch }), { abortSignal });
        } catch (error) {
          if (!ec2ErrorCode(error)?.startsWith('InvalidInstanceID.')) throw error;
          return { missing: new Set(String((error as Error).message).match(/i-[0-9a-f]+/g) ?? []) };
        }
      });
      if ('missing' in answer) {
        const next = batch.filter((id) => !answer.missing.has(id));
        // When EC2 does not say which id it refused, each is tried alone (and one alone that fails is unknown).
        if (next.length === batch.length) {
          if (batch.length === 1) return;
          for (const id of batch) await this.terminateIn(region, [id]);
          return;
        }
        remaining = next;
        continue;
      }
      for (const item of answer.TerminatingInstances ?? [])
        if (item.InstanceId)
          this.tracker.terminationRequested(item.InstanceId, stateOf(item.CurrentState?.Name));
      return;
    }
  }

  // ---- inventory ----------------------------------------------------------------------------------------------

  /** Every instance of a region matching the filters, following NextToken to the last page. */
  private async describe(region: string, filters: Filter[]): Promise<(Observation & { allTags: Tags })[]> {
    const instances = await this.pages(region, async (c, abortSignal, NextToken) => {
      const answer = await c.send(
        new DescribeInstancesCommand({ Filters: filters, MaxResults: this.options.pageSize, NextToken }),
        { abortSignal },
      );
      return { items: (answer.Reservations ?? []).flatMap((r) => r.Instances ?? []), next: answer.NextToken };
    });
    return this.observations(region, instances);
  }

  private observations(
    region: string,
    instances: readonly Ec2Instance[],
  ): (Observation & { allTags: Tags })[] {
    const now = this.clock.now();
    return instances.flatMap((instance) => {
      const o = observationOf(instance, region, now);
      if (!o) return [];
      const allTags = Object.fromEntries((instance.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));
      return [{ ...o, allTags }];
    });
  }

  private snapshot(o: Observation): Instance {
    const offering = this.offeringOf(o);
    return this.tracker.observe(o, offering, this.launchPrice(offering, o.zone, this.markets.get(o.region)));
  }

  /** The offering an instance came from: its tag, else its type and market (instances launched by hand, old tags). */
  private offeringOf(o: Observation): Offering {
    const tagged = o.offeringId ? this.anyRegion.get(o.offeringId) : undefined;
    if (tagged) return tagged;
    const capacityType = o.spot ? 'spot' : 'on-demand';
    const id = offeringId(VENDOR, o.region, o.instanceType, capacityType);
    const known = this.anyRegion.get(id);
    if (known) return known;
    const facts = [...this.anyRegion.values()].find((x) => x.instanceType === o.instanceType);
    return {
      id,
      vendor: VENDOR,
      region: o.region,
      regionGroup: regionGroupOf(VENDOR, o.region) ?? 'unknown',
      instanceType: o.instanceType,
      gpu: facts?.gpu ?? 'unknown',
      gpusPerInstance: facts?.gpusPerInstance ?? 0,
      gpuMemoryGiB: facts?.gpuMemoryGiB ?? 0,
      vcpus: facts?.vcpus ?? 0,
      memoryGiB: facts?.memoryGiB ?? 0,
      capacityType,
      microsPerHour: micros(0),
    };
  }

  /** One inventory round for the events: states of everything we own, then spot interruption notices. */
  private async poll(): Promise<void> {
    await Promise.all(
      this.options.regions.map(async (region) => {
        try {
          const seen = new Set<string>();
          for (const o of await this.describe(region, [tagFilter(TAG_BROKER, this.options.brokerId)])) {
            seen.add(o.id);
            this.snapshot(o);
          }
          this.tracker.sweep(region, seen, this.options.vanishedAfterMs);
          await this.pollInterruptions(region);
        } catch (error) {
          if (!this.closed) this.options.onPollError(error);
        }
      }),
    );
  }

  private async pollInterruptions(region: string): Promise<void> {
    const watched = this.tracker.watchedSpot(region);
    for (const ids of chunks(watched, 100)) {
      const requests = await this.pages(region, async (c, abortSignal, NextToken) => {
        const answer = await c.send(
          new DescribeSpotInstanceRequestsCommand({
            Filters: [{ Name: 'instance-id', Values: ids }],
            MaxResults: this.options.pageSize,
            NextToken,
          }),
          { abortSignal },
        );
        return { items: answer.SpotInstanceRequests ?? [], next: answer.NextToken };
      });
      for (const r of requests)
        if (r.InstanceId && INTERRUPTION_CODES.has(r.Status?.Code ?? ''))
          this.tracker.interruptionNotice(
            r.InstanceId,
            (r.Status?.UpdateTime?.getTime() ?? this.clock.now()) + SPOT_WARNING_MS,
          );
    }
  }

  // ---- market -------------------------------------------------------------------------------------------------

  private async marketOf(region: string): Promise<RegionMarket> {
    const cached = this.markets.get(region);
    if (cached && this.clock.now() - cached.atMs < MARKET_MAX_AGE_MS) return cached;
    return this.fetchMarket(region);
  }

  /** Zones offering each catalog instance type of the region, and current spot prices (Linux/UNIX) per zone. */
  private async fetchMarket(region: string): Promise<RegionMarket> {
    const offerings = [...this.catalog.values()].filter((o) => o.region === region);
    const types = [...new Set(offerings.map((o) => o.instanceType))];
    const spotTypes = [
      ...new Set(offerings.filter((o) => o.capacityType === 'spot').map((o) => o.instanceType)),
    ];
    const zones = new Map<string, string[]>();
    for (const batch of chunks(types, 100)) {
      const rows = await this.pages(region, async (c, abortSignal, NextToken) => {
        const answer = await c.send(
          new DescribeInstanceTypeOfferingsCommand({
            LocationType: 'availability-zone',
            Filters: [{ Name: 'instance-type', Values: batch }],
            MaxResults: this.options.pageSize,
            NextToken,
          }),
          { abortSignal },
        );
        return { items: answer.InstanceTypeOfferings ?? [], next: answer.NextToken };
      });
      for (const row of rows) {
        if (!row.InstanceType || !row.Location) continue;
        const list = zones.get(row.InstanceType) ?? [];
        list.push(row.Location);
        zones.set(row.InstanceType, list);
      }
    }
    const latest = new Map<string, Map<string, { price: Micros; atMs: number }>>();
    const now = new Date(this.clock.now());
    for (const batch of chunks(spotTypes, 100)) {
      const rows = await this.pages(region, async (c, abortSignal, NextToken) => {
        const answer = await c.send(
          new DescribeSpotPriceHistoryCommand({
            InstanceTypes: batch as Ec2InstanceType[],
            ProductDescriptions: [SPOT_PRODUCT],
            // The same start and end: EC2 answers with the price in effect then, per type and zone.
            StartTime: now,
            EndTime: now,
            MaxResults: this.options.pageSize,
            NextToken,
          }),
          { abortSignal },
        );
        return { items: answer.SpotPriceHistory ?? [], next: answer.NextToken };
      });
      for (const row of rows) {
        const price = row.SpotPrice ? usdPriceMicros(row.SpotPrice) : undefined;
        if (!row.InstanceType || !row.AvailabilityZone || price === undefined) continue;
        const atMs = row.Timestamp?.getTime() ?? 0;
        const perZone = latest.get(row.InstanceType) ?? new Map();
        const before = perZone.get(row.AvailabilityZone);
        if (!before || before.atMs <= atMs) perZone.set(row.AvailabilityZone, { price, atMs });
        latest.set(row.InstanceType, perZone);
      }
    }
    const spot = new Map(
      [...latest].map(
        ([type, perZone]) => [type, new Map([...perZone].map(([z, p]) => [z, p.price]))] as const,
      ),
    );
    const market: RegionMarket = { atMs: this.clock.now(), zones, spot };
    this.markets.set(region, market);
    return market;
  }

  private quote(o: Offering, market: RegionMarket | undefined): OfferingQuote {
    let price = o.capacityType === 'spot' ? o.microsPerHour : this.listPrices.priceOf(o);
    if (!market) return { ...o, microsPerHour: price, available: false, availableZones: [] };
    const now = this.clock.now();
    let zones = (market.zones.get(o.instanceType) ?? []).filter((z) => !this.stockedOut(o.id, z, now));
    if (o.capacityType === 'spot') {
      const prices = market.spot.get(o.instanceType) ?? new Map<string, Micros>();
      zones = zones.filter((z) => prices.has(z));
      const candidates = (zones.length > 0 ? zones : [...prices.keys()]).flatMap((z) => {
        const p = prices.get(z);
        return p === undefined ? [] : [p];
      });
      if (candidates.length > 0) price = micros(Math.min(...candidates));
    }
    return { ...o, microsPerHour: price, available: zones.length > 0, availableZones: [...zones].sort() };
  }

  private stockedOut(offeringId: string, zone: string, now: number): boolean {
    const until = this.stockouts.get(`${offeringId}@${zone}`);
    if (until === undefined) return false;
    if (until > now) return true;
    this.stockouts.delete(`${offeringId}@${zone}`);
    return false;
  }

  // ---- calls --------------------------------------------------------------------------------------------------

  private client(region: string): EC2Client {
    const client = this.clients.get(region);
    if (!client) throw new InvalidRequestError(VENDOR, 'region', `${region} is not configured`);
    return client;
  }

  /**
   * One EC2 call with the contract's errors: throttling is retried with exponential backoff on the Clock
   * (`withBackoff`: base × 2^retry ms, no jitter), up to the configured retries, then becomes ThrottledError
   * (`retried`: nobody retries it again); anything else is mapped at once.
   */
  private async ec2<T>(
    region: string,
    call: (client: EC2Client, abortSignal: AbortSignal) => Promise<T>,
    context: Omit<ErrorContext, 'region'> = {},
  ): Promise<T> {
    const client = this.client(region);
    const attempt = async () => {
      this.assertOpen();
      try {
        return await call(client, this.stopping.signal);
      } catch (error) {
        throw toProviderError(error, {
          region,
          capacityRetryAfterMs: this.options.capacityRetryAfterMs,
          ...context,
        });
      }
    };
    try {
      return await withBackoff(
        {
          clock: this.clock,
          policy: this.options.backoff,
          retryable: (error) => error instanceof ThrottledError,
          signal: this.stopping.signal,
        },
        attempt,
      );
    } catch (error) {
      if (error instanceof BackoffExhausted)
        throw new ThrottledError(
          VENDOR,
          error.retryAfterMs,
          `${(error.last as ThrottledError).message} (still throttled after ${error.attempts} attempts)`,
          true,
        );
      if (error instanceof ProviderError) throw error;
      throw closedError(); // a wait between retries was cut short: the client is closing
    }
  }

  /** Pages of a describe call, each page one `ec2` call (so each is retried on its own). */
  private async pages<T>(
    region: string,
    fetch: (
      client: EC2Client,
      abortSignal: AbortSignal,
      nextToken: string | undefined,
    ) => Promise<{ items: readonly T[]; next: string | undefined }>,
  ): Promise<T[]> {
    const all: T[] = [];
    let token: string | undefined;
    for (;;) {
      const page = await this.ec2(region, (c, signal) => fetch(c, signal, token));
      all.push(...page.items);
      if (!page.next || page.next === token) return all;
      token = page.next;
    }
  }

  private assertOpen(): void {
    if (this.closed) throw closedError();
  }
}

/** A tag filter whose value matches literally (EC2 filter values take `*` and `?` as wildcards, `\` escapes). */
function tagFilter(key: string, value: string): Filter {
  return { Name: `tag:${key}`, Values: [value.replace(/[\\*?]/g, '\\$&')] };
}

function fingerprintOf(request: ProvisionRequest): string {
  return JSON.stringify([
    request.offeringId,
    request.count,
    request.zone ?? null,
    Object.entries(request.tags ?? {}).sort(byKey),
  ]);
}

function byKey([a]: [string, string], [b]: [string, string]): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function reusedKey(key: string): InvalidRequestError {
  return new InvalidRequestError(VENDOR, 'idempotencyKey', `"${key}" was used before with other parameters`);
}

function closedError(): ProviderUnavailableError {
  return new ProviderUnavailableError(VENDOR, undefined, 'the client is closed');
}

/** Reads (offerings, list, terminate) may fail only with ThrottledError or ProviderUnavailableError. */
function readOnlyError(error: unknown, region: string | undefined): ProviderError {
  const mapped = toProviderError(error, { region: region ?? 'all regions' });
  if (mapped instanceof ThrottledError || mapped instanceof ProviderUnavailableError) return mapped;
  return new ProviderUnavailableError(VENDOR, region, mapped.message, { cause: mapped });
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
