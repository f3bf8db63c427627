/**
 * The embedded default: one simulated provider per catalog vendor (aws, gcp, azure), sharing one scenario, one
 * clock and one spot replay. `npm start` buys from these; tests and simulations build their own with a scenario.
 */
import type { Clock } from '../../lib/clock.ts';
import { loadCatalog } from '../catalog/load-catalog.ts';
import type { Offering } from '../catalog/offering.ts';
import { type SimScenario, type SimScenarioInput, simScenario } from './scenario.ts';
import { SimProvider } from './sim-provider.ts';
import { SpotReplay } from './spot-replay.ts';

export interface SimCloudsOptions {
  readonly clock: Clock;
  /** A validated scenario or its input (validated here); default `{}`. */
  readonly scenario?: SimScenario | SimScenarioInput;
  /** Default: the bundled catalog. */
  readonly offerings?: readonly Offering[];
}

export function createSimClouds(options: SimCloudsOptions): SimProvider[] {
  const scenario = simScenario((options.scenario ?? {}) as SimScenarioInput);
  const offerings = options.offerings ?? loadCatalog();
  const startMs = options.clock.now();
  const spotReplay = new SpotReplay(scenario, startMs);
  const vendors = scenario.vendors ?? [...new Set(offerings.map((o) => o.vendor))].sort();
  return vendors.map(
    (vendor) => new SimProvider({ vendor, clock: options.clock, offerings, scenario, spotReplay, startMs }),
  );
}
