// The `gpubroker` package's entry (`import { App } from 'gpubroker'`): the SDK package, re-exported. It sits
// here, beside the root package.json, so that `@gpubroker/sdk` resolves to the installed SDK package.
export * from '@gpubroker/sdk';
