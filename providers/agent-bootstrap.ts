/**
 * How a cloud instance the broker launches joins it: the launch passes a start-up script (AWS `UserData`, GCP
 * `metadata.startup-script`, Azure `customData`) that installs Node and gpubroker and starts `gpubroker agent`
 * with a join token. The token is bound to the launch (its idempotency key): the broker accepts it once per
 * instance that launch created, from an agent that names that instance's id (read from the cloud's metadata
 * service), and from nobody else.
 */
export interface AgentBootstrap {
  /** The broker's URL as the instance reaches it (`https://broker.example.com`). */
  readonly brokerUrl: string;
  /** A join token bound to this launch. */
  readonly joinToken: string;
  /** The gpubroker version to install (default: the broker's own). */
  readonly version?: string;
}
