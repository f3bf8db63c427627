/**
 * This SDK's version, sent to the broker with every call (`x-gpubroker-sdk`) so that a broker that cannot serve it
 * says so, naming both versions. The same as `version` in sdk/package.json (package.test.ts checks).
 */
export const SDK_VERSION = '0.1.0';

/** The request header that carries SDK_VERSION. */
export const SDK_VERSION_HEADER = 'x-gpubroker-sdk';
