/**
 * Billing on HTTP: usage, invoices, costs, the price book and tenants' limits. Tenants see their own usage and
 * invoices only; operators see every tenant's (or one, with `?tenant=`) and manage prices, limits and closing.
 */
import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { asc, eq } from 'drizzle-orm';
import type { Context } from 'hono';
import { microsToUsd, usdToMicros } from '../../lib/money.ts';
import { costReport } from '../billing/costs.ts';
import { priceLines } from '../billing/invoices.ts';
import { monthBounds, monthOf } from '../billing/months.ts';
import type { PriceBookVersion } from '../billing/price-book.ts';
import { usageGroups } from '../billing/usage-groups.ts';
import type { BrokerCore } from '../broker.ts';
import { tenants } from '../db/schema.ts';
import type { Principal } from '../tokens.ts';
import { HttpProblem } from './problem.ts';
import { type Env, json, problems, router } from './route-docs.ts';
import {
  costsQuerySchema,
  costsSchema,
  invoiceListSchema,
  invoiceQuerySchema,
  monthParam,
  priceBookVersionSchema,
  tenantLimitsSchema,
  tenantSchema,
  usageQuerySchema,
  usageSchema,
} from './schemas.ts';
import { registerVersionedRoutes } from './versioned-routes.ts';

export function billingRoutes(broker: BrokerCore, operator: (c: Context<Env>) => void): OpenAPIHono<Env> {
  const app = router();
  const { db } = broker.database;
  const clock = broker.clock;
  const names = async () =>
    new Map(
      (await db.select({ id: tenants.id, name: tenants.name }).from(tenants)).map((t) => [t.id, t.name]),
    );
  const tenantIdOf = async (name: string, field: string) => {
    const [row] = await db.select({ id: tenants.id }).from(tenants).where(eq(tenants.name, name));
    if (!row) throw new HttpProblem(404, 'Not found', `no tenant "${name}"`, field);
    return row.id;
  };
  /** The tenants a principal may see: itself, or (operators) everyone or the one named. */
  const scope = async (principal: Principal, tenant: string | undefined): Promise<string | undefined> => {
    if (principal.role !== 'operator') {
      if (tenant !== undefined && tenant !== principal.tenantName)
        throw new HttpProblem(403, 'Forbidden', 'only operators see other tenants', 'tenant');
      return principal.tenantId;
    }
    return tenant === undefined ? undefined : tenantIdOf(tenant, 'tenant');
  };
  const window = (from: string | undefined, to: string | undefined) => {
    const now = clock.now();
    const toMs = to === undefined ? now : Date.parse(to);
    const fromMs = from === undefined ? monthBounds(monthOf(now)).startMs : Date.parse(from);
    if (fromMs >= toMs) throw new HttpProblem(400, 'Invalid request', 'from: must be before to', 'from');
    return { fromMs, toMs };
  };
  // Reads (and closing) see every event the meter holds, so a lease just released is billed in full at once
  // rather than at the next heartbeat.
  for (const path of ['/v1/usage', '/v1/invoices/*', '/v1/costs'])
    app.use(path, async (_c, next) => {
      await broker.meter.flush();
      await next();
    });

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/usage',
      operationId: 'getUsage',
      summary: 'Metered usage, grouped by function, GPU type, day or lease',
      request: { query: usageQuerySchema },
      responses: { 200: json(usageSchema, 'Usage in the window'), ...problems },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const { fromMs, toMs } = window(q.from, q.to);
      const tenantId = await scope(c.get('principal'), q.tenant);
      const groups = await usageGroups(db, fromMs, toMs, {
        ...(tenantId ? { tenantId } : {}),
        byDay: q.groupBy === 'day',
      });
      const rates = await broker.invoices.ratesAt(toMs);
      const tenantNames = await names();
      const rows = new Map<
        string,
        { tenant: string; key: string; seconds: number; gpuSeconds: number; amountMicroUsd: number }
      >();
      for (const g of groups) {
        if (q.groupBy === 'function' && g.kind !== 'container') continue;
        if (q.groupBy === 'lease' && g.kind !== 'lease') continue;
        const key = q.groupBy === 'gpu' ? g.gpu : q.groupBy === 'day' ? (g.day ?? '') : g.subject;
        const tenant = tenantNames.get(g.tenantId) ?? g.tenantId;
        const [line] = priceLines([g], rates);
        const id = `${tenant}|${key}`;
        const row = rows.get(id) ?? { tenant, key, seconds: 0, gpuSeconds: 0, amountMicroUsd: 0 };
        row.seconds += g.seconds;
        row.gpuSeconds += g.gpuSeconds;
        row.amountMicroUsd += line?.amountMicroUsd ?? 0;
        rows.set(id, row);
      }
      const list = [...rows.values()].sort((a, b) =>
        `${a.tenant}|${a.key}`.localeCompare(`${b.tenant}|${b.key}`),
      );
      return c.json(
        {
          fromMs,
          toMs,
          groupBy: q.groupBy,
          rows: list,
          totalGpuSeconds: list.reduce((t, r) => t + r.gpuSeconds, 0),
          totalMicroUsd: list.reduce((t, r) => t + r.amountMicroUsd, 0),
        },
        200,
      );
    },
  );

  const invoicesFor = async (principal: Principal, tenant: string | undefined, month?: string) => {
    const only = await scope(principal, tenant);
    const ids = only ? [only] : [...(await names()).keys()];
    if (month !== undefined) return Promise.all(ids.map((id) => broker.invoices.invoice(id, month)));
    return (await Promise.all(ids.map((id) => broker.invoices.invoices(id)))).flat();
  };
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/invoices',
      operationId: 'listInvoices',
      summary: 'Invoices, newest month first (a tenant: its own; operators: every tenant or ?tenant=)',
      request: { query: invoiceQuerySchema },
      responses: { 200: json(invoiceListSchema, 'Invoices'), ...problems },
    }),
    async (c) =>
      c.json({ invoices: await invoicesFor(c.get('principal'), c.req.valid('query').tenant) }, 200),
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/invoices/{month}',
      operationId: 'listMonthInvoices',
      summary: 'Invoices for one month (YYYY-MM, UTC)',
      request: { params: monthParam, query: invoiceQuerySchema },
      responses: { 200: json(invoiceListSchema, 'One invoice per tenant in scope'), ...problems },
    }),
    async (c) =>
      c.json(
        {
          invoices: await invoicesFor(
            c.get('principal'),
            c.req.valid('query').tenant,
            c.req.valid('param').month,
          ),
        },
        200,
      ),
  );
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/invoices/{month}/close',
      operationId: 'closeMonth',
      summary: 'Close a month that has ended (operator): every invoice of it becomes immutable',
      request: { params: monthParam },
      responses: { 200: json(invoiceListSchema, 'The closed invoices'), ...problems },
    }),
    async (c) => {
      operator(c);
      return c.json({ invoices: await broker.invoices.close(c.req.valid('param').month) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/costs',
      operationId: 'getCosts',
      summary: 'Fleet cost against billed usage per GPU type: utilisation and margin (operator)',
      request: { query: costsQuerySchema },
      responses: { 200: json(costsSchema, 'Costs in the window'), ...problems },
    }),
    async (c) => {
      operator(c);
      const q = c.req.valid('query');
      const { fromMs, toMs } = window(q.from, q.to);
      return c.json(await costReport(db, fromMs, toMs, await broker.invoices.ratesAt(toMs)), 200);
    },
  );

  const priceView = async (v: PriceBookVersion) => {
    const rates = await broker.invoices.ratesAt(clock.now());
    const gpus = new Set([
      ...broker.offerings.all().map((o) => o.gpu),
      ...Object.keys(v.book.gpuMicrosPerSecond),
    ]);
    return {
      version: v.version,
      book: v.book as unknown as Record<string, unknown>,
      gpuRates: Object.fromEntries([...gpus].sort().map((gpu) => [gpu, rates.gpuRate(gpu)])),
      createdAtMs: v.createdAt,
      createdBy: v.createdBy,
      diff: [...v.diff],
    };
  };
  registerVersionedRoutes(app, {
    path: '/v1/prices',
    noun: 'price book',
    operation: 'PriceBook',
    schema: priceBookVersionSchema,
    getSummary: 'The price book in force, with the effective rate per GPU type',
    current: () => broker.priceBooks.current(),
    set: (input, actor) => broker.priceBooks.set(input, actor),
    history: () => broker.priceBooks.history(),
    view: priceView,
  });

  app.openapi(
    createRoute({
      method: 'put',
      path: '/v1/tenants/{name}/limits',
      operationId: 'setTenantLimits',
      summary: "Set a tenant's GPU quota and spend limits (operator); null removes a limit",
      request: {
        params: z.object({ name: z.string().min(1).max(63) }),
        body: { content: { 'application/json': { schema: tenantLimitsSchema } }, required: true },
      },
      responses: { 200: json(tenantLimitsSchema, 'The limits in force'), ...problems },
    }),
    async (c) => {
      operator(c);
      const tenantId = await tenantIdOf(c.req.valid('param').name, 'name');
      const body = c.req.valid('json');
      const micros = (usd: number | null | undefined) =>
        usd === undefined ? undefined : usd === null ? null : (usdToMicros(usd) as number);
      const set = {
        ...(body.gpuQuota !== undefined ? { gpuQuota: body.gpuQuota } : {}),
        ...(body.spendLimitUsdPerHour !== undefined
          ? { spendLimitHourMicros: micros(body.spendLimitUsdPerHour) }
          : {}),
        ...(body.spendLimitUsdPerMonth !== undefined
          ? { spendLimitMonthMicros: micros(body.spendLimitUsdPerMonth) }
          : {}),
        ...(body.onSpendLimit !== undefined ? { onSpendLimit: body.onSpendLimit } : {}),
      };
      if (Object.keys(set).length > 0)
        await db.transaction(async (tx) => {
          await tx.update(tenants).set(set).where(eq(tenants.id, tenantId));
          await broker.audit.record(tx, {
            actor: c.get('principal').tenantName,
            action: 'tenant.limits',
            subject: c.req.valid('param').name,
            detail: { ...body },
          });
        });
      broker.spend.forget(tenantId);
      const [row] = await db.select().from(tenants).where(eq(tenants.id, tenantId));
      return c.json(limitsView(row), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/tenants',
      operationId: 'listTenants',
      summary: 'Every tenant with its GPU quota and spend limits (operator)',
      responses: {
        200: json(z.object({ tenants: z.array(tenantSchema) }), 'Tenants, by name'),
        ...problems,
      },
    }),
    async (c) => {
      operator(c);
      const rows = await db.select().from(tenants).orderBy(asc(tenants.name));
      return c.json(
        { tenants: rows.map((row) => ({ name: row.name, createdAtMs: row.createdAt, ...limitsView(row) })) },
        200,
      );
    },
  );
  return app;
}

/** A tenant row's limits as the API shows them (USD; null: no limit). */
function limitsView(
  row: typeof tenants.$inferSelect | undefined,
): Omit<z.infer<typeof tenantSchema>, 'name' | 'createdAtMs'> {
  return {
    gpuQuota: row?.gpuQuota ?? null,
    spendLimitUsdPerHour: row?.spendLimitHourMicros == null ? null : microsToUsd(row.spendLimitHourMicros),
    spendLimitUsdPerMonth: row?.spendLimitMonthMicros == null ? null : microsToUsd(row.spendLimitMonthMicros),
    onSpendLimit: row?.onSpendLimit ?? 'continue',
  };
}
