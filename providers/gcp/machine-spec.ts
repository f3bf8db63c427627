/**
 * What GCE machine a catalog offering is, and the instance properties that request it. A2/A3/A4/G2 machine types
 * come with their GPUs; N1 offerings are named `<host>+<N>x<GPU>` in the catalog and get `guestAccelerators`
 * (https://cloud.google.com/compute/docs/gpus). GPU VMs cannot live-migrate, so host maintenance terminates them.
 */
import type { protos } from '@google-cloud/compute';
import type { Offering } from '../catalog/offering.ts';

type InstanceProperties = protos.google.cloud.compute.v1.IInstanceProperties;

export interface MachineSpec {
  readonly machineType: string;
  /** Attached GPUs for N1 hosts; empty for machine types with built-in GPUs. */
  readonly accelerators: readonly { readonly acceleratorType: string; readonly acceleratorCount: number }[];
  /** The accelerator type a zone must offer for this machine (acceleratorTypes.aggregatedList names). */
  readonly acceleratorType: string | undefined;
}

/** Catalog GPU names → GCE accelerator type names, for N1 hosts. */
export const N1_ACCELERATORS: Readonly<Record<string, string>> = {
  T4: 'nvidia-tesla-t4',
  V100: 'nvidia-tesla-v100',
  P100: 'nvidia-tesla-p100',
  P4: 'nvidia-tesla-p4',
  K80: 'nvidia-tesla-k80',
};

/** Machine family prefixes → the accelerator type their GPUs are listed as. */
const FAMILY_ACCELERATORS: ReadonlyArray<readonly [string, string]> = [
  ['a2-highgpu-', 'nvidia-tesla-a100'],
  ['a2-megagpu-', 'nvidia-tesla-a100'],
  ['a2-ultragpu-', 'nvidia-a100-80gb'],
  ['a3-highgpu-', 'nvidia-h100-80gb'],
  ['a3-megagpu-', 'nvidia-h100-mega-80gb'],
  ['a3-ultragpu-', 'nvidia-h200-141gb'],
  ['a4-highgpu-', 'nvidia-b200'],
  ['g2-standard-', 'nvidia-l4'],
];

/**
 * Accelerator types → the regional quota metric their GPUs count against (https://cloud.google.com/compute/quotas:
 * `NVIDIA_L4_GPUS`; spot VMs count against the `PREEMPTIBLE_` one).
 */
const QUOTA_METRICS: Readonly<Record<string, string>> = {
  'nvidia-tesla-t4': 'NVIDIA_T4_GPUS',
  'nvidia-tesla-v100': 'NVIDIA_V100_GPUS',
  'nvidia-tesla-p100': 'NVIDIA_P100_GPUS',
  'nvidia-tesla-p4': 'NVIDIA_P4_GPUS',
  'nvidia-tesla-k80': 'NVIDIA_K80_GPUS',
  'nvidia-tesla-a100': 'NVIDIA_A100_GPUS',
  'nvidia-a100-80gb': 'NVIDIA_A100_80GB_GPUS',
  'nvidia-h100-80gb': 'NVIDIA_H100_GPUS',
  'nvidia-h100-mega-80gb': 'NVIDIA_H100_MEGA_GPUS',
  'nvidia-h200-141gb': 'NVIDIA_H200_GPUS',
  'nvidia-b200': 'NVIDIA_B200_GPUS',
  'nvidia-l4': 'NVIDIA_L4_GPUS',
};

/** The regional GPU quota metric an offering's instances count against, if known. */
export function quotaMetricOf(offering: Offering): string | undefined {
  const { acceleratorType } = machineSpecOf(offering);
  const metric = acceleratorType ? QUOTA_METRICS[acceleratorType] : undefined;
  if (!metric) return undefined;
  return offering.capacityType === 'spot' ? `PREEMPTIBLE_${metric}` : metric;
}

export function machineSpecOf(offering: Offering): MachineSpec {
  const n1 = /^(n1-[a-z]+-\d+)\+(\d+)x(.+)$/.exec(offering.instanceType);
  if (n1) {
    const [, machineType = '', count = '0', gpu = ''] = n1;
    const acceleratorType = N1_ACCELERATORS[gpu] ?? `nvidia-tesla-${gpu.toLowerCase()}`;
    return {
      machineType,
      accelerators: [{ acceleratorType, acceleratorCount: Number(count) }],
      acceleratorType,
    };
  }
  const family = FAMILY_ACCELERATORS.find(([prefix]) => offering.instanceType.startsWith(prefix));
  return { machineType: offering.instanceType, accelerators: [], acceleratorType: family?.[1] };
}

export interface InstanceSettings {
  /** Boot image (default Debian 12; use an image with NVIDIA drivers, e.g. a Deep Learning VM family). */
  readonly bootImage: string;
  readonly bootDiskGb: number;
  readonly bootDiskType: string;
  /** VPC network and subnetwork (partial URLs); the project's `default` network when omitted. */
  readonly network?: string | undefined;
  readonly subnetwork?: string | undefined;
  /** Give each VM an ephemeral external IP (default: internal only). */
  readonly externalIp: boolean;
  /** Service account the VMs run as (none when omitted), with the cloud-platform scope. */
  readonly serviceAccount?: string | undefined;
}

/**
 * The `instanceProperties` of a bulkInsert for `offering`
 * (https://cloud.google.com/compute/docs/reference/rest/v1/instances/bulkInsert): machine and accelerator types are
 * names, not URLs, as InstanceProperties requires. Spot VMs are deleted on preemption, so a reclaimed VM leaves
 * nothing behind; nothing restarts automatically, because the broker replaces lost capacity itself.
 */
export function instancePropertiesFor(
  offering: Offering,
  settings: InstanceSettings,
  labels: Record<string, string>,
  metadata: Record<string, string>,
): InstanceProperties {
  const spec = machineSpecOf(offering);
  const spot = offering.capacityType === 'spot';
  return {
    machineType: spec.machineType,
    ...(spec.accelerators.length > 0 ? { guestAccelerators: spec.accelerators.map((a) => ({ ...a })) } : {}),
    labels,
    metadata: { items: Object.entries(metadata).map(([key, value]) => ({ key, value })) },
    scheduling: {
      onHostMaintenance: 'TERMINATE',
      automaticRestart: false,
      ...(spot ? { provisioningModel: 'SPOT', instanceTerminationAction: 'DELETE' } : {}),
    },
    disks: [
      {
        boot: true,
        autoDelete: true,
        type: 'PERSISTENT',
        initializeParams: {
          sourceImage: settings.bootImage,
          diskSizeGb: settings.bootDiskGb,
          diskType: settings.bootDiskType,
        },
      },
    ],
    networkInterfaces: [
      {
        ...(settings.network ? { network: settings.network } : {}),
        ...(settings.subnetwork ? { subnetwork: settings.subnetwork } : {}),
        ...(settings.externalIp ? { accessConfigs: [{ name: 'External NAT', type: 'ONE_TO_ONE_NAT' }] } : {}),
      },
    ],
    ...(settings.serviceAccount
      ? {
          serviceAccounts: [
            { email: settings.serviceAccount, scopes: ['https://www.googleapis.com/auth/cloud-platform'] },
          ],
        }
      : {}),
  };
}
