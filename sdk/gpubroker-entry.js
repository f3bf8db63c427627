// The `gpubroker` package's own entry (`import { App } from 'gpubroker'`): the SDK package, re-exported.
export * from '@gpubroker/sdk';
