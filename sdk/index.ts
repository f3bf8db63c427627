/** The gpubroker SDK: `import { Broker } from 'gpubroker'`. */
export {
  Broker,
  BrokerApiError,
  type BrokerClientOptions,
  type CreatedToken,
  type CreateTokenInput,
  type Lease,
  LeaseFailedError,
  type LeaseHandle,
  type LeaseRequestInput,
  type PolicyVersion,
  type Problem,
  type RequestGpusOptions,
} from './broker-client.ts';
