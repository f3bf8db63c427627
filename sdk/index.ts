/** The gpubroker SDK: `import { Broker } from 'gpubroker'`. */
export {
  Broker,
  BrokerApiError,
  type BrokerClientOptions,
  type Lease,
  LeaseFailedError,
  type LeaseHandle,
  type LeaseRequestInput,
  type RequestGpusOptions,
} from './broker-client.ts';
