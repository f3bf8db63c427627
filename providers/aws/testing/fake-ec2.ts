/**
 * A wire-level fake of Amazon EC2 for tests: a node:http server on 127.0.0.1 that speaks EC2's Query protocol
 * (form-urlencoded POST of `Action=…&Version=2016-11-15&…`, XML answers, XML errors with HTTP status), so that the
 * real `@aws-sdk/client-ec2` can be pointed at it through its `endpoint` option. One server serves every region:
 * the region is read from the SigV4 credential scope of the Authorization header
 * (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_aws-signing.html), as each real
 * regional endpoint would know it from its host name. Signatures are not verified; the access key id is.
 *
 * It models what the adapter depends on: instances with their life cycle (pending → running → shutting-down →
 * terminated) on a Clock, tags, client-token idempotency, capacity per instance type, zone and market
 * (InsufficientInstanceCapacity), vCPU quotas per region, spot prices and spot interruptions, paginated describe
 * calls, eventual consistency of DescribeInstances, and injected errors. The same server also answers the Price
 * List Query API (GetProducts, JSON protocol, see fake-pricing.ts) for on-demand list prices, so that one endpoint
 * serves both clients, as LocalStack's does.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Clock, RealClock, type TimerHandle } from '../../../lib/clock.ts';
import { errorXml, successXml, type XmlObject } from './ec2-xml.ts';
import { FakePricing, type OnDemandPrice, PricingError } from './fake-pricing.ts';
import { QueryParams } from './query-params.ts';

export type Market = 'on-demand' | 'spot';
type StateName = 'pending' | 'running' | 'shutting-down' | 'terminated' | 'stopping' | 'stopped';

/** Instance state codes (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InstanceState.html). */
const STATE_CODES: Readonly<Record<StateName, number>> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
};

/** HTTP status per error code: client errors are 4xx, server errors 5xx (errors-overview.html). */
const ERROR_STATUS: Readonly<Record<string, number>> = {
  AuthFailure: 401,
  OptInRequired: 401,
  UnauthorizedOperation: 403,
  DryRunOperation: 412,
  RequestLimitExceeded: 503,
  InsufficientInstanceCapacity: 500,
  InternalError: 500,
  Unavailable: 503,
};

export interface CapacityRule {
  readonly instanceType?: string;
  readonly zone?: string;
  readonly market?: Market;
  /** Instances that may be active at once in each matching zone (ours included). */
  readonly count: number;
}

export interface FakeEc2Options {
  readonly clock?: Clock;
  /** The access key id requests must be signed with (default `AKIDFAKEEC2`); any other gets AuthFailure. */
  readonly accessKeyId?: string;
  /** Availability zones per region; a region not listed answers OptInRequired. */
  readonly zones: Readonly<Record<string, readonly string[]>>;
  /** Instance types EC2 knows, with their vCPUs (for quotas). Each is offered in every zone unless `notOffered`. */
  readonly instanceTypes: Readonly<Record<string, { readonly vcpus: number }>>;
  readonly notOffered?: ReadonlyArray<{ readonly instanceType: string; readonly zone: string }>;
  /** Active instances per instance type, zone and market (default 1,000); later rules win. */
  readonly capacity?: readonly CapacityRule[];
  /** vCPUs of active instances per region and market (default: no limit). */
  readonly quotas?: { readonly onDemandVcpus?: number; readonly spotVcpus?: number };
  /** Current Linux/UNIX spot prices in USD per hour; a type and zone without one has no spot market. */
  readonly spotPrices?: ReadonlyArray<{
    readonly instanceType: string;
    readonly zone: string;
    readonly usd: string;
  }>;
  /** Linux on-demand list prices the Price List Query API answers with; a type and region without one has none. */
  readonly onDemandPrices?: readonly OnDemandPrice[];
  /** Subnets the fake knows, with their zone. */
  readonly subnets?: Readonly<Record<string, string>>;
  readonly bootDelayMs?: number;
  readonly terminateDelayMs?: number;
  /** Time between a spot interruption notice and the start of the shutdown (EC2: two minutes). */
  readonly spotWarningMs?: number;
  /** Most items one describe call returns, whatever MaxResults asks (default 1,000). */
  readonly pageSize?: number;
  /** New instances stay out of DescribeInstances answers this long (EC2 is eventually consistent). */
  readonly describeLagMs?: number;
  /** How long terminated instances stay visible (EC2: about an hour). */
  readonly terminatedVisibleMs?: number;
}

/** One request the fake answered, for assertions on what the adapter sent. */
export interface RecordedRequest {
  readonly action: string;
  readonly region: string;
  readonly params: Readonly<Record<string, string>>;
  readonly atMs: number;
  readonly status: number;
  readonly errorCode?: string;
}

/** What a test may inspect of an instance. */
export interface FakeInstanceView {
  readonly id: string;
  readonly region: string;
  readonly zone: string;
  readonly instanceType: string;
  readonly market: Market;
  readonly state: StateName;
  readonly tags: Readonly<Record<string, string>>;
  readonly clientToken: string;
  /** The UserData RunInstances carried, as sent (base64), as DescribeInstanceAttribute would give it back. */
  readonly userData: string | undefined;
}

interface FakeInstance {
  readonly id: string;
  readonly region: string;
  readonly zone: string;
  readonly instanceType: string;
  readonly market: Market;
  readonly imageId: string;
  readonly subnetId: string | undefined;
  readonly reservationId: string;
  readonly clientToken: string;
  readonly userData: string | undefined;
  readonly launchTimeMs: number;
  readonly tags: ReadonlyArray<readonly [string, string]>;
  readonly spotRequest: SpotRequest | undefined;
  readonly amiLaunchIndex: number;
  state: StateName;
  stateReason?: { readonly code: string; readonly message: string };
  transitionReason: string;
  terminatedAtMs?: number;
  timer?: TimerHandle;
}

interface SpotRequest {
  readonly id: string;
  readonly createTimeMs: number;
  state: 'open' | 'active' | 'closed' | 'cancelled';
  statusCode: string;
  statusMessage: string;
  updateTimeMs: number;
}

interface Reservation {
  readonly id: string;
  readonly instances: readonly FakeInstance[];
}

class Ec2Error extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface Injected {
  readonly code: string;
  readonly message: string;
  readonly status: number | undefined;
  left: number;
}

const OWNER_ID = '123456789012';
const PRODUCT = 'Linux/UNIX';

export class FakeEc2 {
  readonly requests: RecordedRequest[] = [];
  private readonly clock: Clock;
  private readonly accessKeyId: string;
  private readonly capacityRules: CapacityRule[];
  private readonly notOffered: Set<string>;
  /** Price history per `instanceType@zone`, oldest first. */
  private readonly spotPrices = new Map<string, { usd: string; atMs: number }[]>();
  private readonly instances: FakeInstance[] = [];
  private readonly tokens = new Map<string, { fingerprint: string; reservation: Reservation }>();
  private readonly injected = new Map<string, Injected[]>();
  private readonly pricing: FakePricing;
  private server: Server | undefined;

  constructor(private readonly options: FakeEc2Options) {
    this.clock = options.clock ?? new RealClock();
    this.accessKeyId = options.accessKeyId ?? 'AKIDFAKEEC2';
    this.capacityRules = [...(options.capacity ?? [])];
    this.notOffered = new Set((options.notOffered ?? []).map((o) => `${o.instanceType}@${o.zone}`));
    for (const p of options.spotPrices ?? []) this.setSpotPrice(p.instanceType, p.zone, p.usd);
    this.pricing = new FakePricing(options.onDemandPrices ?? [], options.pageSize ?? 1_000);
  }

  /** Starts listening on 127.0.0.1; returns the endpoint URL to give the SDK. */
  async start(): Promise<string> {
    const server = createServer((request, response) => {
      this.handle(request, response).catch((error: unknown) => {
        response.statusCode = 500;
        response.end(errorXml('InternalError', String(error), randomUUID()));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    return this.url;
  }

  get url(): string {
    const address = this.server?.address() as AddressInfo | null | undefined;
    if (!address) throw new Error('the fake EC2 is not listening');
    return `http://127.0.0.1:${address.port}`;
  }

  async close(): Promise<void> {
    for (const instance of this.instances) instance.timer?.cancel();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * The next `times` calls of `action` (`*`: any EC2 action; Price List Query API operations such as `GetProducts`
   * only by name) fail with this error code.
   */
  failNext(
    action: string,
    code: string,
    options: { times?: number; message?: string; status?: number } = {},
  ): void {
    const queue = this.injected.get(action) ?? [];
    queue.push({
      code,
      message: options.message ?? `injected ${code}`,
      status: options.status,
      left: options.times ?? 1,
    });
    this.injected.set(action, queue);
  }

  setCapacity(rule: CapacityRule): void {
    this.capacityRules.push(rule);
  }

  /** The Linux on-demand list price the Price List Query API gives from now on. */
  setOnDemandPrice(instanceType: string, region: string, usd: string): void {
    this.pricing.set(instanceType, region, usd);
  }

  setSpotPrice(instanceType: string, zone: string, usd: string): void {
    const key = `${instanceType}@${zone}`;
    const history = this.spotPrices.get(key) ?? [];
    history.push({ usd, atMs: this.clock.now() });
    this.spotPrices.set(key, history);
  }

  /**
   * Reclaims a spot instance as EC2 does when it needs the capacity back: the spot request's status becomes
   * `instance-terminated-no-capacity` at once while the instance stays `running` for the warning time, then it
   * shuts down with state reason `Server.SpotInstanceTermination`
   * (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-request-status.html).
   */
  interruptSpot(instanceId: string, statusCode = 'instance-terminated-no-capacity'): void {
    const instance = this.instances.find((i) => i.id === instanceId);
    const spot = instance?.spotRequest;
    if (!instance || !spot) throw new Error(`${instanceId} is not a spot instance of this fake`);
    const now = this.clock.now();
    spot.state = statusCode === 'marked-for-termination' ? 'active' : 'closed';
    spot.statusCode = statusCode;
    spot.statusMessage = 'Your Spot Instance was terminated due to standard capacity management processes.';
    spot.updateTimeMs = now;
    instance.timer?.cancel();
    instance.timer = this.clock.setTimer(now + (this.options.spotWarningMs ?? 120_000), () =>
      this.shutDown(instance, {
        code: 'Server.SpotInstanceTermination',
        message: 'Server.SpotInstanceTermination: Spot instance termination',
      }),
    );
  }

  /** Ends an instance the way a host failure does: shutting down with a `Server.*` state reason nobody asked for. */
  failInstance(instanceId: string, code = 'Server.InternalError'): void {
    const instance = this.instances.find((i) => i.id === instanceId);
    if (!instance) throw new Error(`${instanceId} is not an instance of this fake`);
    this.shutDown(instance, { code, message: `${code}: An internal error caused the instance to terminate` });
  }

  /** The instances the fake holds, terminated ones included until they age out. */
  list(): FakeInstanceView[] {
    return this.visible(false).map((i) => ({
      id: i.id,
      region: i.region,
      zone: i.zone,
      instanceType: i.instanceType,
      market: i.market,
      state: i.state,
      tags: Object.fromEntries(i.tags),
      clientToken: i.clientToken,
      userData: i.userData,
    }));
  }

  /** Requests of one action, in order. */
  calls(action: string): RecordedRequest[] {
    return this.requests.filter((r) => r.action === action);
  }

  // ---- HTTP ---------------------------------------------------------------------------------------------------

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const target = request.headers['x-amz-target'];
    if (typeof target === 'string' && target.startsWith('AWSPriceListService.'))
      return this.handlePricing(request, response, target.slice('AWSPriceListService.'.length), chunks);
    const params = QueryParams.parse(Buffer.concat(chunks).toString('utf8'));
    const action = params.get('Action') ?? '';
    const region = /Credential=[^/]+\/\d{8}\/([^/]+)\/ec2\/aws4_request/.exec(
      request.headers.authorization ?? '',
    )?.[1];
    const requestId = randomUUID();
    let status = 200;
    let errorCode: string | undefined;
    let body: string;
    try {
      const keyId = /Credential=([^/]+)\//.exec(request.headers.authorization ?? '')?.[1];
      if (request.method !== 'POST') throw new Ec2Error('InvalidAction', 'EC2 takes Query requests by POST');
      if (keyId !== this.accessKeyId || !region)
        throw new Ec2Error('AuthFailure', 'AWS was not able to validate the provided access credentials');
      if (!this.options.zones[region])
        throw new Ec2Error('OptInRequired', `You are not subscribed to this service in ${region}.`);
      if (params.get('Version') !== '2016-11-15')
        throw new Ec2Error('InvalidParameterValue', `Unsupported API version: ${params.get('Version')}`);
      const injected = this.takeInjected(action);
      if (injected) {
        status = injected.status ?? ERROR_STATUS[injected.code] ?? 400;
        throw new Ec2Error(injected.code, injected.message);
      }
      if (params.get('DryRun') === 'true')
        throw new Ec2Error('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.');
      body = successXml(action, requestId, this.dispatch(action, region, params));
    } catch (error) {
      if (!(error instanceof Ec2Error)) throw error;
      errorCode = error.code;
      if (status === 200) status = ERROR_STATUS[error.code] ?? 400;
      body = errorXml(error.code, error.message, requestId);
    }
    this.requests.push({
      action,
      region: region ?? '',
      params: Object.fromEntries(params.entries()),
      atMs: this.clock.now(),
      status,
      ...(errorCode ? { errorCode } : {}),
    });
    response.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8', 'x-amzn-requestid': requestId });
    response.end(body);
  }

  /**
   * A Price List Query API request (JSON 1.1 protocol): signed for service `pricing` in us-east-1, where the API
   * lives; errors are `{ "__type", "message" }` with the code in `x-amzn-ErrorType` too.
   */
  private handlePricing(
    request: IncomingMessage,
    response: ServerResponse,
    operation: string,
    chunks: readonly Buffer[],
  ): void {
    const requestId = randomUUID();
    const scope = /Credential=([^/]+)\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(
      request.headers.authorization ?? '',
    );
    let status = 200;
    let errorCode: string | undefined;
    let body: unknown;
    let parsed: unknown;
    try {
      if (request.method !== 'POST') throw new PricingError('UnknownOperationException', 'POST only');
      if (scope?.[1] !== this.accessKeyId)
        throw new PricingError(
          'UnrecognizedClientException',
          'The security token included in the request is invalid.',
        );
      if (scope[3] !== 'pricing' || scope[2] !== 'us-east-1')
        throw new PricingError(
          'InvalidSignatureException',
          `Credential should be scoped to us-east-1/pricing, not ${scope[2]}/${scope[3]}`,
        );
      try {
        parsed = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
      } catch {
        throw new PricingError('SerializationException', 'Malformed JSON');
      }
      const injected = this.takeInjected(operation, false);
      if (injected) throw new PricingError(injected.code, injected.message, injected.status ?? 400);
      body = this.pricing.answer(operation, parsed);
    } catch (error) {
      if (!(error instanceof PricingError)) throw error;
      status = error.status;
      errorCode = error.code;
      body = { __type: error.code, message: error.message };
    }
    this.requests.push({
      action: operation,
      region: scope?.[2] ?? '',
      params: pricingParams(parsed),
      atMs: this.clock.now(),
      status,
      ...(errorCode ? { errorCode } : {}),
    });
    response.writeHead(status, {
      'content-type': 'application/x-amz-json-1.1',
      'x-amzn-requestid': requestId,
      ...(errorCode ? { 'x-amzn-errortype': errorCode } : {}),
    });
    response.end(JSON.stringify(body));
  }

  private takeInjected(action: string, anyAction = true): Injected | undefined {
    for (const key of anyAction ? [action, '*'] : [action]) {
      const queue = this.injected.get(key);
      const next = queue?.[0];
      if (!queue || !next) continue;
      next.left--;
      if (next.left <= 0) queue.shift();
      return next;
    }
    return undefined;
  }

  private dispatch(action: string, region: string, params: QueryParams): XmlObject {
    switch (action) {
      case 'RunInstances':
        return this.runInstances(region, params);
      case 'TerminateInstances':
        return this.terminateInstances(region, params);
      case 'DescribeInstances':
        return this.describeInstances(region, params);
      case 'DescribeInstanceTypeOfferings':
        return this.describeInstanceTypeOfferings(region, params);
      case 'DescribeSpotPriceHistory':
        return this.describeSpotPriceHistory(region, params);
      case 'DescribeSpotInstanceRequests':
        return this.describeSpotInstanceRequests(region, params);
      case 'DescribeAvailabilityZones':
        return this.describeAvailabilityZones(region, params);
      default:
        throw new Ec2Error('InvalidAction', `The action ${action} is not valid for this web service.`);
    }
  }

  // ---- actions ------------------------------------------------------------------------------------------------

  /**
   * RunInstances: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_RunInstances.html
   * MinCount..MaxCount instances in one zone or none (InsufficientInstanceCapacity). A ClientToken seen before
   * returns the first reservation when the other parameters are the same, the Availability Zone aside, and
   * IdempotentParameterMismatch otherwise (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html).
   * Only a request that launched something keeps its token.
   */
  private runInstances(region: string, params: QueryParams): XmlObject {
    const clientToken = params.get('ClientToken') ?? '';
    if (clientToken.length > 64 || !/^[\x20-\x7e]*$/.test(clientToken))
      throw new Ec2Error(
        'InvalidParameterValue',
        'Value for parameter clientToken is invalid: at most 64 ASCII characters.',
      );
    const fingerprint = JSON.stringify(
      params
        .entries()
        .filter(([key]) => !['ClientToken', 'Placement.AvailabilityZone', 'SubnetId'].includes(key)),
    );
    const seen = clientToken ? this.tokens.get(`${region}|${clientToken}`) : undefined;
    if (seen) {
      if (seen.fingerprint !== fingerprint)
        throw new Ec2Error(
          'IdempotentParameterMismatch',
          'The client token you have provided is associated with a request for a different set of parameters.',
        );
      return reservationXml(seen.reservation, (i) => this.instanceXml(i));
    }

    const template =
      params.get('LaunchTemplate.LaunchTemplateId') ?? params.get('LaunchTemplate.LaunchTemplateName');
    const imageId = params.get('ImageId') ?? '';
    if (!imageId && !template)
      throw new Ec2Error('MissingParameter', 'The request must contain the parameter ImageId');
    if (imageId && !/^ami-[0-9a-f]{8}(?:[0-9a-f]{9})?$/.test(imageId))
      throw new Ec2Error('InvalidAMIID.Malformed', `Invalid id: "${imageId}" (expecting "ami-...")`);
    const instanceType = params.get('InstanceType') ?? '';
    const type = this.options.instanceTypes[instanceType];
    if (!type)
      throw new Ec2Error('InvalidParameterValue', `Invalid value '${instanceType}' for InstanceType.`);
    const minCount = Number(params.get('MinCount'));
    const maxCount = Number(params.get('MaxCount'));
    if (
      !Number.isSafeInteger(minCount) ||
      !Number.isSafeInteger(maxCount) ||
      minCount < 1 ||
      maxCount < minCount
    )
      throw new Ec2Error(
        'InvalidParameterValue',
        'MinCount and MaxCount must be integers, 1 <= MinCount <= MaxCount',
      );

    const subnetId = params.get('SubnetId');
    let zone = params.get('Placement.AvailabilityZone');
    if (subnetId !== undefined) {
      const subnetZone = this.options.subnets?.[subnetId];
      if (!subnetZone)
        throw new Ec2Error('InvalidSubnetID.NotFound', `The subnet ID '${subnetId}' does not exist`);
      if (zone !== undefined && zone !== subnetZone)
        throw new Ec2Error(
          'InvalidParameterCombination',
          'The subnet and the Availability Zone do not match',
        );
      zone = subnetZone;
    }
    const zones = this.options.zones[region] ?? [];
    zone ??= zones[0] ?? '';
    if (!zones.includes(zone))
      throw new Ec2Error('InvalidParameterValue', `Invalid availability zone: [${zone}]`);
    if (!this.offered(instanceType, zone))
      throw new Ec2Error(
        'Unsupported',
        `Your requested instance type (${instanceType}) is not supported in your requested Availability Zone (${zone}).`,
      );
    const marketType = params.get('InstanceMarketOptions.MarketType');
    if (marketType !== undefined && marketType !== 'spot' && marketType !== 'capacity-block')
      throw new Ec2Error('InvalidParameterValue', `Invalid value '${marketType}' for MarketType.`);
    const market: Market = marketType === 'spot' ? 'spot' : 'on-demand';
    if (market === 'spot' && !this.spotPrices.has(`${instanceType}@${zone}`))
      throw new Ec2Error(
        'InsufficientInstanceCapacity',
        `There is no Spot capacity available for ${instanceType} in ${zone}.`,
      );
    const tags = this.tagsOf(params);
    const userData = params.get('UserData');
    if (userData !== undefined) checkUserData(userData);

    this.checkQuota(region, market, minCount * type.vcpus);
    const active = this.active().filter(
      (i) => i.zone === zone && i.instanceType === instanceType && i.market === market,
    ).length;
    const free = this.capacityOf(instanceType, zone, market) - active;
    if (free < minCount)
      throw new Ec2Error(
        'InsufficientInstanceCapacity',
        `We currently do not have sufficient ${instanceType} capacity in the Availability Zone you requested (${zone}). Our system will be working on provisioning additional capacity. You can currently get ${instanceType} capacity by not specifying an Availability Zone in your request or choosing ${zones
          .filter((z) => z !== zone)
          .join(', ')}.`,
      );

    const now = this.clock.now();
    const reservationId = `r-${hex17()}`;
    const launched: FakeInstance[] = [];
    for (let index = 0; index < Math.min(maxCount, free); index++) {
      const instance: FakeInstance = {
        id: `i-${hex17()}`,
        region,
        zone,
        instanceType,
        market,
        imageId: imageId || 'ami-0fa1ce0ec2000000a',
        subnetId,
        reservationId,
        clientToken,
        userData,
        launchTimeMs: now,
        tags,
        amiLaunchIndex: index,
        spotRequest:
          market === 'spot'
            ? {
                id: `sir-${randomBytes(4).toString('hex')}`,
                createTimeMs: now,
                state: 'active',
                statusCode: 'fulfilled',
                statusMessage: 'Your Spot request is fulfilled.',
                updateTimeMs: now,
              }
            : undefined,
        state: 'pending',
        transitionReason: '',
      };
      instance.timer = this.clock.setTimer(now + (this.options.bootDelayMs ?? 100), () => {
        instance.timer = undefined;
        if (instance.state === 'pending') instance.state = 'running';
      });
      this.instances.push(instance);
      launched.push(instance);
    }
    const reservation = { id: reservationId, instances: launched };
    if (clientToken) this.tokens.set(`${region}|${clientToken}`, { fingerprint, reservation });
    return reservationXml(reservation, (i) => this.instanceXml(i));
  }

  /**
   * TerminateInstances: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_TerminateInstances.html
   * Succeeds for instances already terminated; an unknown id fails the whole call (InvalidInstanceID.NotFound).
   */
  private terminateInstances(region: string, params: QueryParams): XmlObject {
    const ids = params.strings('InstanceId');
    if (ids.length === 0)
      throw new Ec2Error('MissingParameter', 'The request must contain the parameter InstanceId');
    const targets = this.byIds(region, ids);
    const now = this.clock.now();
    const items = targets.map((instance) => {
      const previous = instance.state;
      if (
        previous === 'pending' ||
        previous === 'running' ||
        previous === 'stopping' ||
        previous === 'stopped'
      ) {
        if (instance.spotRequest) {
          instance.spotRequest.state = 'closed';
          instance.spotRequest.statusCode = 'instance-terminated-by-user';
          instance.spotRequest.statusMessage = 'Spot Instance terminated due to user-initiated termination.';
          instance.spotRequest.updateTimeMs = now;
        }
        this.shutDown(instance, {
          code: 'Client.UserInitiatedShutdown',
          message: 'Client.UserInitiatedShutdown: User initiated shutdown',
        });
      }
      return {
        instanceId: instance.id,
        currentState: stateXml(instance.state),
        previousState: stateXml(previous),
      };
    });
    return { instancesSet: items };
  }

  /**
   * DescribeInstances: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html
   * Filters (`tag:<key>`, `tag-key`, `instance-state-name`, `instance-id`, `client-token`, `instance-type`,
   * `availability-zone`, `instance-lifecycle`), MaxResults 5–1000 with NextToken, not combined with InstanceId.
   */
  private describeInstances(region: string, params: QueryParams): XmlObject {
    const ids = params.strings('InstanceId');
    if (ids.length > 0 && params.get('MaxResults') !== undefined)
      throw new Ec2Error(
        'InvalidParameterCombination',
        'The parameter instancesSet cannot be used with the parameter maxResults',
      );
    const filters = readFilters(params, {
      'instance-state-name': (i: FakeInstance) => [i.state],
      'instance-id': (i) => [i.id],
      'client-token': (i) => [i.clientToken],
      'instance-type': (i) => [i.instanceType],
      'availability-zone': (i) => [i.zone],
      'instance-lifecycle': (i) => (i.market === 'spot' ? ['spot'] : []),
      'tag-key': (i) => i.tags.map(([key]) => key),
      'tag:': (i, name) => i.tags.filter(([key]) => key === name.slice(4)).map(([, value]) => value),
    });
    const source =
      ids.length > 0 ? this.byIds(region, ids) : this.visible(true).filter((i) => i.region === region);
    const matching = source.filter(filters);
    const { page, nextToken } = this.paginate(matching, params, 5);
    const reservations: Reservation[] = [];
    for (const instance of page) {
      const last = reservations.at(-1);
      if (last?.id === instance.reservationId) (last.instances as FakeInstance[]).push(instance);
      else reservations.push({ id: instance.reservationId, instances: [instance] });
    }
    return {
      reservationSet: reservations.map((r) => reservationXml(r, (i) => this.instanceXml(i))),
      nextToken,
    };
  }

  /**
   * DescribeInstanceTypeOfferings:
   * https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstanceTypeOfferings.html
   * LocationType `region` (default), `availability-zone` or `availability-zone-id`; filters `instance-type`, `location`.
   */
  private describeInstanceTypeOfferings(region: string, params: QueryParams): XmlObject {
    const locationType = params.get('LocationType') ?? 'region';
    if (!['region', 'availability-zone', 'availability-zone-id'].includes(locationType))
      throw new Ec2Error('InvalidParameterValue', `Invalid value '${locationType}' for LocationType.`);
    const zones = this.options.zones[region] ?? [];
    const rows: { instanceType: string; locationType: string; location: string }[] = [];
    for (const instanceType of Object.keys(this.options.instanceTypes).sort()) {
      const offeredIn = zones.filter((z) => this.offered(instanceType, z));
      if (locationType === 'region') {
        if (offeredIn.length > 0) rows.push({ instanceType, locationType, location: region });
      } else
        for (const zone of offeredIn)
          rows.push({
            instanceType,
            locationType,
            location: locationType === 'availability-zone' ? zone : zoneId(region, zones, zone),
          });
    }
    const filters = readFilters(params, {
      'instance-type': (row: (typeof rows)[number]) => [row.instanceType],
      location: (row) => [row.location],
    });
    const { page, nextToken } = this.paginate(rows.filter(filters), params, 5);
    return { instanceTypeOfferingSet: page, nextToken };
  }

  /**
   * DescribeSpotPriceHistory: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeSpotPriceHistory.html
   * The prices in [StartTime, EndTime] plus, per instance type and zone, the last change before StartTime (the
   * price in effect at StartTime). Only the Linux/UNIX product is priced here.
   */
  private describeSpotPriceHistory(region: string, params: QueryParams): XmlObject {
    const types = params.strings('InstanceType');
    const products = params.strings('ProductDescription');
    const zone = params.get('AvailabilityZone');
    const now = this.clock.now();
    const start = params.get('StartTime') ? Date.parse(params.get('StartTime') as string) : now;
    const end = params.get('EndTime') ? Date.parse(params.get('EndTime') as string) : now;
    if (Number.isNaN(start) || Number.isNaN(end) || start > end)
      throw new Ec2Error(
        'InvalidParameterValue',
        'StartTime and EndTime must be timestamps, StartTime <= EndTime',
      );
    const rows: XmlObject[] = [];
    if (products.length === 0 || products.includes(PRODUCT))
      for (const [key, history] of [...this.spotPrices.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
        const [instanceType = '', priceZone = ''] = key.split('@');
        if (!(this.options.zones[region] ?? []).includes(priceZone)) continue;
        if (types.length > 0 && !types.includes(instanceType)) continue;
        if (zone !== undefined && zone !== priceZone) continue;
        const inWindow = history.filter((h) => h.atMs >= start && h.atMs <= end);
        const before = history.filter((h) => h.atMs < start).at(-1);
        for (const h of [...(before ? [before] : []), ...inWindow])
          rows.push({
            availabilityZone: priceZone,
            instanceType,
            productDescription: PRODUCT,
            spotPrice: h.usd,
            timestamp: new Date(h.atMs),
          });
      }
    const { page, nextToken } = this.paginate(rows, params, 0);
    return { spotPriceHistorySet: page, nextToken };
  }

  /**
   * DescribeSpotInstanceRequests:
   * https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeSpotInstanceRequests.html
   * Filters `instance-id`, `spot-instance-request-id`, `state`, `status-code`; MaxResults with NextToken.
   */
  private describeSpotInstanceRequests(region: string, params: QueryParams): XmlObject {
    const ids = params.strings('SpotInstanceRequestId');
    const spot = this.visible(false).filter((i) => i.region === region && i.spotRequest);
    for (const id of ids)
      if (!spot.some((i) => i.spotRequest?.id === id))
        throw new Ec2Error(
          'InvalidSpotInstanceRequestID.NotFound',
          `The spot instance request ID '${id}' does not exist`,
        );
    const filters = readFilters(params, {
      'instance-id': (i: FakeInstance) => [i.id],
      'spot-instance-request-id': (i) => [i.spotRequest?.id ?? ''],
      state: (i) => [i.spotRequest?.state ?? ''],
      'status-code': (i) => [i.spotRequest?.statusCode ?? ''],
    });
    const matching = spot.filter(
      (i) => (ids.length === 0 || ids.includes(i.spotRequest?.id ?? '')) && filters(i),
    );
    const { page, nextToken } = this.paginate(matching, params, 5);
    return {
      spotInstanceRequestSet: page.map((i) => {
        const request = i.spotRequest as SpotRequest;
        return {
          spotInstanceRequestId: request.id,
          spotPrice: this.currentSpotPrice(i.instanceType, i.zone) ?? '0',
          type: 'one-time',
          state: request.state,
          status: {
            code: request.statusCode,
            updateTime: new Date(request.updateTimeMs),
            message: request.statusMessage,
          },
          launchSpecification: { instanceType: i.instanceType, placement: { availabilityZone: i.zone } },
          instanceId: i.id,
          createTime: new Date(request.createTimeMs),
          productDescription: PRODUCT,
          launchedAvailabilityZone: i.zone,
          instanceInterruptionBehavior: 'terminate',
          tagSet: [],
        };
      }),
      nextToken,
    };
  }

  /** DescribeAvailabilityZones: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeAvailabilityZones.html */
  private describeAvailabilityZones(region: string, params: QueryParams): XmlObject {
    const names = params.strings('ZoneName');
    const zones = this.options.zones[region] ?? [];
    return {
      availabilityZoneInfo: zones
        .filter((zone) => names.length === 0 || names.includes(zone))
        .map((zone) => ({
          zoneName: zone,
          zoneState: 'available',
          regionName: region,
          zoneId: zoneId(region, zones, zone),
          zoneType: 'availability-zone',
          optInStatus: 'opt-in-not-required',
          groupName: region,
          networkBorderGroup: region,
          messageSet: [],
        })),
    };
  }

  // ---- model --------------------------------------------------------------------------------------------------

  private shutDown(instance: FakeInstance, reason: { code: string; message: string }): void {
    instance.timer?.cancel();
    instance.state = 'shutting-down';
    instance.stateReason = reason;
    instance.transitionReason = `${reason.code.startsWith('Client.') ? 'User' : 'Service'} initiated (${gmt(this.clock.now())})`;
    instance.timer = this.clock.setTimer(this.clock.now() + (this.options.terminateDelayMs ?? 100), () => {
      instance.timer = undefined;
      instance.state = 'terminated';
      instance.terminatedAtMs = this.clock.now();
    });
  }

  /** Instances not yet aged out; with `lagged`, also without the ones too new to be seen (eventual consistency). */
  private visible(lagged: boolean): FakeInstance[] {
    const now = this.clock.now();
    const retention = this.options.terminatedVisibleMs ?? 3_600_000;
    const lag = lagged ? (this.options.describeLagMs ?? 0) : 0;
    return this.instances.filter(
      (i) =>
        (i.state !== 'terminated' || now - (i.terminatedAtMs ?? now) < retention) &&
        (lag === 0 || now - i.launchTimeMs >= lag),
    );
  }

  private active(): FakeInstance[] {
    return this.instances.filter((i) => i.state !== 'terminated');
  }

  private byIds(region: string, ids: readonly string[]): FakeInstance[] {
    const malformed = ids.filter((id) => !/^i-[0-9a-f]{8}(?:[0-9a-f]{9})?$/.test(id));
    if (malformed.length > 0)
      throw new Ec2Error('InvalidInstanceID.Malformed', `Invalid id: "${malformed[0]}"`);
    const known = this.visible(true).filter((i) => i.region === region);
    const missing = ids.filter((id) => !known.some((i) => i.id === id));
    if (missing.length === 1)
      throw new Ec2Error('InvalidInstanceID.NotFound', `The instance ID '${missing[0]}' does not exist`);
    if (missing.length > 1)
      throw new Ec2Error(
        'InvalidInstanceID.NotFound',
        `The instance IDs '${missing.join(', ')}' do not exist`,
      );
    return [...new Set(ids)].map((id) => known.find((i) => i.id === id) as FakeInstance);
  }

  private offered(instanceType: string, zone: string): boolean {
    return instanceType in this.options.instanceTypes && !this.notOffered.has(`${instanceType}@${zone}`);
  }

  private capacityOf(instanceType: string, zone: string, market: Market): number {
    let count = 1_000;
    for (const rule of this.capacityRules)
      if (
        (rule.instanceType ?? instanceType) === instanceType &&
        (rule.zone ?? zone) === zone &&
        (rule.market ?? market) === market
      )
        count = rule.count;
    return count;
  }

  /**
   * On-demand instances count against the region's vCPU limit (VcpuLimitExceeded), spot instances against the
   * spot vCPU limit (MaxSpotInstanceCountExceeded); both codes in
   * https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
   */
  private checkQuota(region: string, market: Market, requestedVcpus: number): void {
    const limit = market === 'spot' ? this.options.quotas?.spotVcpus : this.options.quotas?.onDemandVcpus;
    if (limit === undefined) return;
    let used = 0;
    for (const i of this.active())
      if (i.region === region && i.market === market)
        used += this.options.instanceTypes[i.instanceType]?.vcpus ?? 0;
    if (used + requestedVcpus <= limit) return;
    if (market === 'spot')
      throw new Ec2Error('MaxSpotInstanceCountExceeded', 'Max spot instance count exceeded');
    throw new Ec2Error(
      'VcpuLimitExceeded',
      `You have requested more vCPU capacity than your current vCPU limit of ${limit} allows for the instance bucket that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.`,
    );
  }

  private currentSpotPrice(instanceType: string, zone: string): string | undefined {
    return this.spotPrices.get(`${instanceType}@${zone}`)?.at(-1)?.usd;
  }

  private tagsOf(params: QueryParams): ReadonlyArray<readonly [string, string]> {
    const tags: [string, string][] = [];
    for (const spec of params.structs('TagSpecification')) {
      const resourceType = spec.get('ResourceType');
      if (!resourceType) throw new Ec2Error('MissingParameter', 'TagSpecification needs a ResourceType');
      if (resourceType !== 'instance') continue;
      for (const tag of spec.structs('Tag')) {
        const key = tag.get('Key') ?? '';
        const value = tag.get('Value') ?? '';
        if (
          key.length === 0 ||
          key.length > 128 ||
          value.length > 256 ||
          key.toLowerCase().startsWith('aws:')
        )
          throw new Ec2Error('InvalidParameterValue', `Tag key or value is not valid: "${key}"`);
        if (tags.some(([k]) => k === key))
          throw new Ec2Error('InvalidParameterValue', `Duplicate tag key "${key}"`);
        tags.push([key, value]);
      }
    }
    if (tags.length > 50)
      throw new Ec2Error('TagLimitExceeded', 'The maximum number of tags per resource is 50');
    return tags;
  }

  /**
   * One page of `rows`: at most MaxResults (which must lie in [min, 1000]) and at most the fake's page size; the
   * NextToken is opaque to the client (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/Query-Requests.html#api-pagination).
   */
  private paginate<T>(
    rows: readonly T[],
    params: QueryParams,
    min: number,
  ): { page: T[]; nextToken?: string } {
    const maxText = params.get('MaxResults');
    const max = maxText === undefined ? 1_000 : Number(maxText);
    if (!Number.isSafeInteger(max) || max < min || max > 1_000)
      throw new Ec2Error(
        'InvalidParameterValue',
        `Value ( ${maxText} ) for parameter maxResults is invalid.`,
      );
    const token = params.get('NextToken');
    let offset = 0;
    if (token !== undefined) {
      const decoded = /^page:(\d+)$/.exec(Buffer.from(token, 'base64url').toString('utf8'));
      if (!decoded) throw new Ec2Error('InvalidParameterValue', `Invalid NextToken: ${token}`);
      offset = Number(decoded[1]);
    }
    const size = Math.max(1, Math.min(max, this.options.pageSize ?? 1_000));
    const page = rows.slice(offset, offset + size);
    const next = offset + size;
    return next < rows.length
      ? { page, nextToken: Buffer.from(`page:${next}`).toString('base64url') }
      : { page };
  }

  private instanceXml(i: FakeInstance): XmlObject {
    return {
      instanceId: i.id,
      imageId: i.imageId,
      instanceState: stateXml(i.state),
      privateDnsName: '',
      dnsName: '',
      reason: i.transitionReason,
      amiLaunchIndex: i.amiLaunchIndex,
      productCodes: [],
      instanceType: i.instanceType,
      launchTime: new Date(i.launchTimeMs),
      placement: { availabilityZone: i.zone, groupName: '', tenancy: 'default' },
      monitoring: { state: 'disabled' },
      subnetId: i.subnetId,
      stateReason: i.stateReason,
      architecture: 'x86_64',
      rootDeviceType: 'ebs',
      rootDeviceName: '/dev/xvda',
      blockDeviceMapping: [],
      instanceLifecycle: i.market === 'spot' ? 'spot' : undefined,
      spotInstanceRequestId: i.spotRequest?.id,
      virtualizationType: 'hvm',
      clientToken: i.clientToken,
      tagSet: i.tags.map(([key, value]) => ({ key, value })),
      hypervisor: 'xen',
      networkInterfaceSet: [],
      ebsOptimized: false,
      enaSupport: true,
    };
  }
}

function reservationXml(r: Reservation, instance: (i: FakeInstance) => XmlObject): XmlObject {
  return { reservationId: r.id, ownerId: OWNER_ID, groupSet: [], instancesSet: r.instances.map(instance) };
}

function stateXml(state: StateName): XmlObject {
  return { code: STATE_CODES[state], name: state };
}

/**
 * A predicate from the request's `Filter.N.Name` / `Filter.N.Value.M` pairs: every filter must match, any value of
 * a filter may (see `wildcard`). `tag:` stands for every `tag:<key>` filter.
 */
function readFilters<T>(
  params: QueryParams,
  fields: Readonly<Record<string, (row: T, name: string) => readonly string[]>>,
): (row: T) => boolean {
  const filters = params.structs('Filter').map((filter) => {
    const name = filter.get('Name') ?? '';
    const field = fields[name] ?? (name.startsWith('tag:') ? fields['tag:'] : undefined);
    if (!field) throw new Ec2Error('InvalidParameterValue', `The filter '${name}' is invalid`);
    const patterns = filter.strings('Value').map(wildcard);
    return (row: T) => field(row, name).some((value) => patterns.some((p) => p.test(value)));
  });
  return (row) => filters.every((matches) => matches(row));
}

/** A filter value: `*` is any run of characters, `?` one character, and `\` makes the next one literal. */
function wildcard(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '\\' && i + 1 < pattern.length) source += escapeRegExp(pattern[++i] as string);
    else if (c === '*') source += '.*';
    else if (c === '?') source += '.';
    else source += escapeRegExp(c);
  }
  return new RegExp(`^${source}$`, 's');
}

function escapeRegExp(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function zoneId(region: string, zones: readonly string[], zone: string): string {
  const short = region.replace(/^(\w\w)-(\w)\w*-(\d+)$/, '$1$2$3');
  return `${short}-az${zones.indexOf(zone) + 1}`;
}

function hex17(): string {
  return randomBytes(9).toString('hex').slice(0, 17);
}

function gmt(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} GMT`;
}

/**
 * UserData as EC2 takes it: base64 text of at most 16 KB once decoded
 * (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/user-data.html). The SDK sends the string as given.
 */
function checkUserData(text: string): void {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text))
    throw new Ec2Error('InvalidParameterValue', 'Invalid BASE64 encoding of user data.');
  if (Buffer.from(text, 'base64').length > 16_384)
    throw new Ec2Error('InvalidParameterValue', 'User data is limited to 16384 bytes');
}

/** A GetProducts body as flat parameters for RecordedRequest: `ServiceCode`, `NextToken`, `Filter.<Field>`. */
function pricingParams(body: unknown): Record<string, string> {
  const request = (body ?? {}) as {
    ServiceCode?: string;
    NextToken?: string;
    Filters?: { Field?: string; Value?: string }[];
  };
  return {
    ...(request.ServiceCode ? { ServiceCode: request.ServiceCode } : {}),
    ...(request.NextToken ? { NextToken: request.NextToken } : {}),
    ...Object.fromEntries((request.Filters ?? []).map((f) => [`Filter.${f.Field}`, String(f.Value)])),
  };
}
