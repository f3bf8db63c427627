/**
 * An Azure VM's life in the contract's words. ARM tells two things apart: the provisioning state of the resource
 * (Creating, Updating, Succeeded, Failed, Deleting) and the power state of the machine, which only the instance view
 * carries (`PowerState/starting|running|stopping|stopped|deallocating|deallocated`).
 * https://learn.microsoft.com/en-us/azure/virtual-machines/states-billing (the instance view's statuses read
 * `ProvisioningState/<state>[/<errorCode>]` and `PowerState/<state>`)
 * https://learn.microsoft.com/en-us/rest/api/compute/virtual-machines/instance-view
 */
import type { VirtualMachineInstanceView } from '@azure/arm-compute';
import type { InstanceState } from '../provider.ts';

export interface ObservedState {
  readonly state: InstanceState;
  /** Why the VM failed, when its provisioning failed (e.g. an allocation failure reported after the fact). */
  readonly failure?: string;
}

/** Whether the provisioning state alone settles the state, so that no instance view is needed. */
export function needsInstanceView(provisioningState: string | undefined): boolean {
  return provisioningState !== 'Creating' && provisioningState !== 'Deleting';
}

/**
 * The contract state of a VM from its provisioning state and (when fetched) its instance view: running only once the
 * power state says so; a stopped or deallocated VM no longer serves (it is reported terminated, and `terminate` still
 * deletes it); a failed provisioning that left no running machine is a terminated, failed instance.
 */
export function observedState(
  provisioningState: string | undefined,
  view: VirtualMachineInstanceView | undefined,
): ObservedState {
  if (provisioningState === 'Deleting') return { state: 'terminating' };
  const statuses = view?.statuses ?? [];
  const power = statuses.find((s) => s.code?.startsWith('PowerState/'))?.code?.slice('PowerState/'.length);
  const failed = statuses.find((s) => s.code?.toLowerCase().startsWith('provisioningstate/failed'));
  const failure = failed
    ? `${failed.code?.split('/')[2] ?? 'ProvisioningFailed'}: ${failed.message ?? failed.displayStatus ?? ''}`
    : undefined;
  if (power === 'running') return { state: 'running' };
  if (power === 'stopping' || power === 'deallocating') return { state: 'terminating' };
  // A VM may show stopped briefly while it is created or started, so only a settled one counts as ended.
  const settled = provisioningState === 'Succeeded' || provisioningState === 'Failed';
  if (settled && (power === 'stopped' || power === 'deallocated'))
    return failure ? { state: 'terminated', failure } : { state: 'terminated' };
  if (provisioningState === 'Failed')
    return { state: 'terminated', failure: failure ?? 'provisioning failed' };
  return { state: 'pending' };
}

const RANK: Readonly<Record<InstanceState, number>> = {
  pending: 0,
  running: 1,
  terminating: 2,
  terminated: 3,
};

/** States only move forward: a listing read before a delete must not bring a terminating instance back. */
export function isForward(from: InstanceState, to: InstanceState): boolean {
  return RANK[to] > RANK[from];
}
