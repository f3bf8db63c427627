/**
 * What-ifs (operator): the plan a policy change (and, optionally, other demand) would lead to from the current fleet,
 * with its difference from the latest plan; and the buffer curve of a GPU type. Both plan by the loop's own path
 * (ControlLoop.whatIf) and act on nothing: no plan row, no action, no instance.
 */
import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import { ValidationError } from '../../lib/errors.ts';
import type { BrokerCore } from '../broker.ts';
import { bufferCurve } from '../buffer-curve.ts';
import { overrideClasses, planDiff, whatIfPolicy } from '../what-if.ts';
import { requireOperator } from './auth.ts';
import { latestPlanRow, planDetail, planSummary } from './plan-view.ts';
import { HttpProblem } from './problem.ts';
import { type Env, json, problems } from './route-docs.ts';
import { bufferCurveQuerySchema, bufferCurveSchema, whatIfRequestSchema, whatIfSchema } from './schemas.ts';

/** `PUT /v1/policy`'s answer to a policy it refuses: 400 `Invalid policy` naming the field. */
function asPolicyProblem<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (error instanceof ValidationError)
      throw new HttpProblem(400, 'Invalid policy', error.message, error.field);
    throw error;
  }
}

export function registerWhatIfRoutes(app: OpenAPIHono<Env>, broker: BrokerCore): void {
  const { db } = broker.database;
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/plans/what-if',
      operationId: 'planWhatIf',
      summary: 'The plan a policy change would lead to, and its difference from the latest plan (operator)',
      description:
        'Merges the partial policy onto the policy in force, validates it as PUT /v1/policy does, and plans from the current fleet and forecast (or the demand given) exactly as the next tick would plan its first round. Nothing is launched, terminated or stored.',
      request: {
        body: { content: { 'application/json': { schema: whatIfRequestSchema } }, required: true },
      },
      responses: { 200: json(whatIfSchema, 'The plan it would make, and the difference'), ...problems },
    }),
    async (c) => {
      requireOperator(c);
      const body = c.req.valid('json');
      const { policy: current, version } = await broker.policies.current();
      const policy = asPolicyProblem(() => whatIfPolicy(current, body.policy));
      const demand = body.demand && overrideClasses(body.demand, policy, broker.offerings.all());
      const [{ row }, latest] = await Promise.all([
        broker.loop.whatIf(policy, version, demand),
        latestPlanRow(db),
      ]);
      const plan = row ? planDetail(row) : null;
      return c.json(
        {
          plan,
          policy: policy as unknown as Record<string, unknown>,
          against: latest ? planSummary(latest) : null,
          diff: planDiff(latest && planDetail(latest), plan ?? undefined),
        },
        200,
      );
    },
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/plans/buffer-curve',
      operationId: 'bufferCurve',
      summary: "A GPU type's warm buffer from 0 to max GPUs: cost per hour and expected wait (operator)",
      description: [
        'Each point is a what-if: the policy in force with the type’s buffer set to that many GPUs (per region group, fraction 0), planned from the current fleet and forecast.',
        'The wait is an M/G/∞ estimate: requests for one GPU arrive as a Poisson process, so the GPUs busy are Poisson with mean the forecast load (forecast GPUs of the type in the first period, an upper estimate of the mean); a request that finds every GPU the plan holds busy waits one boot (the policy’s provisioningMinutes).',
        'Expected wait = P(Poisson(load) ≥ held GPUs) × boot. Assumed: boots never stock out or queue, and any held GPU of the type fits a request (region groups and gangs are not told apart).',
      ].join(' '),
      request: { query: bufferCurveQuerySchema },
      responses: { 200: json(bufferCurveSchema, 'The curve'), ...problems },
    }),
    async (c) => {
      requireOperator(c);
      const { gpu, max } = c.req.valid('query');
      const { policy, version } = await broker.policies.current();
      const curve = await bufferCurve({
        whatIf: (p) => broker.loop.whatIf(p, version),
        policy,
        gpuTypes: broker.offerings.gpuTypes(),
        gpu,
        max,
      });
      return c.json(curve, 200);
    },
  );
}
