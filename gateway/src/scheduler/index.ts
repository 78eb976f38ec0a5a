/**
 * The rotation scheduler: rotates what the ledger says is due, once across all gateways, and
 * tells devices at check-in which of their keys are due (docs/key-service.md §6).
 *
 * @packageDocumentation
 */
export { newRotationScheduler } from './scheduler';
export type {
  DeviceKeyDue,
  RotationScheduler,
  RotationSchedulerOptions,
  ScheduledRotation,
  SchedulerLog,
  SchedulerRun,
} from './scheduler';
