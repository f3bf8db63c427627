/**
 * instanceIdentity against real HTTP servers on 127.0.0.1 standing in for each cloud's metadata service, speaking
 * what the real ones require (IMDSv2's token, `Metadata-Flavor: Google`, `Metadata: true` and an api-version), and
 * answering in the form the broker's adapters give `Instance.id`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { StartupError } from '../lib/errors.ts';
import { vmNameOf, vmResourceId } from '../providers/azure/vm-spec.ts';
import { instanceId, parseInstanceId } from '../providers/gcp/instance-view.ts';
import { type IdentityVendor, InstanceIdentityError, instanceIdentity } from './instance-identity.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

/** What the metadata server saw: method, path with query, and the headers that matter. */
interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
}

async function serve(handler: Handler): Promise<{ base: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

/** EC2's IMDSv2: PUT /latest/api/token with a TTL header gives a token; GETs without it are 401. */
function imdsV2(instanceIdText: string): Handler {
  return (req, res) => {
    if (req.method === 'PUT' && req.url === '/latest/api/token') {
      const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
      if (!(ttl >= 1 && ttl <= 21_600)) return void res.writeHead(400).end();
      return void res.writeHead(200, { 'content-type': 'text/plain' }).end('AQAEAIMDSv2-session-token==');
    }
    if (req.headers['x-aws-ec2-metadata-token'] !== 'AQAEAIMDSv2-session-token==')
      return void res.writeHead(401).end();
    if (req.method === 'GET' && req.url === '/latest/meta-data/instance-id')
      return void res.writeHead(200, { 'content-type': 'text/plain' }).end(instanceIdText);
    res.writeHead(404).end();
  };
}

/** GCE's metadata server: requires `Metadata-Flavor: Google` (403 otherwise) and echoes it. */
function gceMetadata(zone: string, name: string, options: { echoFlavor?: boolean } = {}): Handler {
  return (req, res) => {
    const flavor = options.echoFlavor === false ? {} : { 'Metadata-Flavor': 'Google' };
    if (req.headers['metadata-flavor'] !== 'Google') return void res.writeHead(403, flavor).end();
    const answers: Record<string, string> = {
      '/computeMetadata/v1/instance/zone': `projects/123456789012/zones/${zone}`,
      '/computeMetadata/v1/instance/name': name,
    };
    const body = answers[req.url ?? ''];
    if (body === undefined) return void res.writeHead(404, flavor).end();
    res.writeHead(200, { 'content-type': 'application/text', ...flavor }).end(body);
  };
}

/** Azure IMDS: requires `Metadata: true` and an api-version (400 otherwise); `compute` is JSON. */
function azureImds(compute: Record<string, unknown>): Handler {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://imds');
    if (req.headers.metadata !== 'true' || !url.searchParams.get('api-version'))
      return void res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"Bad request"}');
    if (url.pathname === '/metadata/instance/compute')
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(compute));
    res.writeHead(404).end();
  };
}

async function failure(vendor: IdentityVendor, promise: Promise<string>): Promise<InstanceIdentityError> {
  const error = await promise.then(
    (id) => {
      throw new Error(`expected a failure, got ${id}`);
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(InstanceIdentityError);
  expect(error).toBeInstanceOf(StartupError);
  const e = error as InstanceIdentityError;
  expect(e.vendor).toBe(vendor);
  expect(e.message).not.toContain('\n');
  expect(e.message).toContain(vendor);
  expect(e.message).toContain(e.url);
  return e;
}

describe('instanceIdentity', () => {
  it('aws: the EC2 instance id through IMDSv2 (token by PUT, then the id with it)', async () => {
    const { base, seen } = await serve(imdsV2('i-0123456789abcdef0'));
    expect(await instanceIdentity('aws', { baseUrl: base })).toBe('i-0123456789abcdef0');
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      'PUT /latest/api/token',
      'GET /latest/meta-data/instance-id',
    ]);
  });

  it('gcp: zone/name, as the GCP adapter names a VM, with Metadata-Flavor: Google both ways', async () => {
    const name = 'gpb-0123456789abcdef-0';
    const { base, seen } = await serve(gceMetadata('us-central1-a', name));
    const id = await instanceIdentity('gcp', { baseUrl: `${base}/` });
    expect(id).toBe(instanceId('us-central1-a', name));
    expect(parseInstanceId(id)).toEqual({ zone: 'us-central1-a', name });
    expect(seen.every((s) => s.headers['metadata-flavor'] === 'Google')).toBe(true);
  });

  it('azure: the VM resource id from IMDS compute, as the Azure adapter names a VM', async () => {
    const sub = '00000000-1111-2222-3333-444444444444';
    const id = vmResourceId(sub, 'gpubroker-test', 'gpb-0123456789abcdef-0');
    const { base, seen } = await serve(
      azureImds({ name: 'gpb-0123456789abcdef-0', resourceId: id, subscriptionId: sub, vmId: 'a-uuid' }),
    );
    expect(await instanceIdentity('azure', { baseUrl: base })).toBe(id);
    expect(vmNameOf(id, sub, 'gpubroker-test')).toBe('gpb-0123456789abcdef-0');
    expect(seen).toEqual([
      expect.objectContaining({
        method: 'GET',
        url: '/metadata/instance/compute?api-version=2021-02-01',
        headers: expect.objectContaining({ metadata: 'true' }),
      }),
    ]);
  });

  it('uses the fetch it is given', async () => {
    const urls: string[] = [];
    const fake: typeof fetch = async (input) => {
      urls.push(String(input));
      return new Response('i-0fedcba9876543210', { status: 200 });
    };
    expect(await instanceIdentity('aws', { fetch: fake })).toBe('i-0fedcba9876543210');
    expect(urls).toEqual([
      'http://169.254.169.254/latest/api/token',
      'http://169.254.169.254/latest/meta-data/instance-id',
    ]);
  });

  describe('fails with one line naming the vendor and the URL', () => {
    it.each(['aws', 'gcp', 'azure'] as const)(
      '%s: a metadata service that never answers, within the timeout',
      async (vendor) => {
        const { base } = await serve(() => {
          // Holds the request open, as a blackholed 169.254.169.254 off the cloud does.
        });
        const started = performance.now();
        const e = await failure(vendor, instanceIdentity(vendor, { baseUrl: base, timeoutMs: 200 }));
        expect(performance.now() - started).toBeLessThan(2_000);
        expect(e.message).toMatch(/did not answer within 200 ms/);
        expect(e.message).toMatch(/^--instance-id-from: /);
        expect(e.url.startsWith(base)).toBe(true);
      },
    );

    it('nothing listening: connection refused', async () => {
      const { base } = await serve(() => undefined);
      const server = servers.pop() as Server;
      await new Promise<void>((resolve) => server.close(() => resolve()));
      const e = await failure('azure', instanceIdentity('azure', { baseUrl: base, timeoutMs: 2_000 }));
      expect(e.message).toContain('cannot be reached (ECONNREFUSED)');
      expect(e.url).toBe(`${base}/metadata/instance/compute?api-version=2021-02-01`);
    });

    it('aws: IMDSv2 refused (HTTP 403 on the token)', async () => {
      const { base } = await serve((_req, res) => void res.writeHead(403).end('Forbidden'));
      const e = await failure('aws', instanceIdentity('aws', { baseUrl: base }));
      expect(e.url).toBe(`${base}/latest/api/token`);
      expect(e.message).toContain('answered HTTP 403: "Forbidden"');
    });

    it('aws: an answer that is not an instance id', async () => {
      const { base } = await serve(imdsV2('<html>\n<body>captive portal</body>\n</html>'));
      const e = await failure('aws', instanceIdentity('aws', { baseUrl: base }));
      expect(e.url).toBe(`${base}/latest/meta-data/instance-id`);
      expect(e.message).toContain('not an EC2 instance id');
    });

    it('gcp: a server that does not say Metadata-Flavor: Google', async () => {
      const { base } = await serve(gceMetadata('us-central1-a', 'vm-1', { echoFlavor: false }));
      const e = await failure('gcp', instanceIdentity('gcp', { baseUrl: base }));
      expect(e.message).toContain('not the GCE metadata server');
    });

    it('azure: a compute document without a VM resource id', async () => {
      const { base } = await serve(azureImds({ name: 'vm-1' }));
      const e = await failure('azure', instanceIdentity('azure', { baseUrl: base }));
      expect(e.message).toContain('not a VM resource id');
    });

    it('a vendor it does not know', async () => {
      await expect(instanceIdentity('oracle' as IdentityVendor)).rejects.toThrow(
        /^--instance-id-from: "oracle" is not aws, gcp or azure$/,
      );
    });
  });
});
