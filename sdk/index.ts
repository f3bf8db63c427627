/**
 * The gpubroker SDK, `@gpubroker/sdk`: `import { Broker } from '@gpubroker/sdk'` (leases, usage, invoices) and
 * `import { App } from '@gpubroker/sdk'` (functions). The `gpubroker` package re-exports it.
 */

export { ApiClient } from './api-client.ts';
export {
  App,
  type CallView,
  FunctionCall,
  type FunctionHandle,
  type FunctionOptions,
  isFunctionHandle,
  type MapOptions,
  RemoteFunctionError,
} from './app.ts';
export {
  type AppStatus,
  Broker,
  BrokerApiError,
  type BrokerClientOptions,
  type CostReport,
  type CreatedToken,
  type CreateTokenInput,
  type DeployInput,
  type ExecOptions,
  type ExecResult,
  type Invoice,
  type InvoiceLine,
  type Layer,
  type Lease,
  LeaseFailedError,
  type LeaseHandle,
  type LeaseRequestInput,
  type LeaseShell,
  type LogLine,
  type PolicyVersion,
  type PriceBookVersion,
  type Problem,
  type RequestGpusOptions,
  type ShellOptions,
  type TenantLimits,
  type TenantLimitsInput,
  type TenantScope,
  type TimeInput,
  type Usage,
  type UsageQuery,
  type UsageRow,
} from './broker-client.ts';
export type { Clock } from './clock.ts';
export { Image, type ImageSpec } from './image.ts';
export { SDK_VERSION, SDK_VERSION_HEADER } from './version.ts';
export type {
  Answer,
  components,
  Method,
  PathOf,
  paths,
  RequestArgs,
  RequestParts,
  Schemas,
} from './wire.ts';
