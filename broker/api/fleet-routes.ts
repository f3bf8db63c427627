/**
 * The fleet (operator): every instance the broker holds, with its offering, state, price and leased GPUs, and the
 * warm buffer per GPU type, the target the latest tick aimed at against the GPUs ready now.
 */
import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import { microsToUsd } from '../../lib/money.ts';
import type { BrokerCore } from '../broker.ts';
import { requireOperator } from './auth.ts';
import { type Env, json, problems, router } from './route-docs.ts';
import { fleetSchema } from './schemas.ts';

export function fleetRoutes(broker: BrokerCore): OpenAPIHono<Env> {
  const app = router();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/fleet',
      operationId: 'getFleet',
      summary:
        'Instances by vendor, region, offering and capacity type, and the warm buffer per GPU type (operator)',
      responses: { 200: json(fleetSchema, 'The fleet'), ...problems },
    }),
    (c) => {
      requireOperator(c);
      const instances = broker.fleet.all();
      const ready = broker.fleet.freeGpusByType();
      const targets = broker.loop.bufferTargets;
      const gpus = [...new Set([...targets.keys(), ...ready.keys()])].sort();
      let micros = 0;
      for (const i of instances) if (i.state !== 'terminated') micros += i.microsPerHour;
      return c.json(
        {
          instances: instances.map((i) => ({
            id: i.id,
            vendor: i.vendor,
            region: i.region,
            zone: i.zone,
            instanceType: i.instanceType,
            capacityType: i.capacityType,
            gpu: i.gpu,
            gpus: i.gpusPerInstance,
            allocatedGpus: i.allocated.size,
            state: i.state,
            draining: i.draining,
            usdPerHour: microsToUsd(i.microsPerHour),
            launchedAtMs: i.launchedAt,
            runningAtMs: i.runningAt,
          })),
          buffers: gpus.map((gpu) => ({
            gpu,
            targetGpus: targets.get(gpu) ?? 0,
            readyGpus: ready.get(gpu) ?? 0,
          })),
          usdPerHour: microsToUsd(micros),
        },
        200,
      );
    },
  );
  return app;
}
