/**
 * The fleet simulator: N virtual devices in one process, each running the real agent code
 * against a gateway over HTTP. It is also the benchmark's only load generator (`Fleet.run`).
 *
 * @packageDocumentation
 */
export { newFleet } from './simulator.js';
export type { DeviceState, Fleet, FleetOptions, RunOptions, Verdict } from './simulator.js';
export { runScenario, summarise, formatSummary } from './scenario.js';
export type { FleetSummary, ScenarioOptions } from './scenario.js';
export { auditTrail } from './audit.js';
export { newOperatorAuthorization, type OperatorAuthOptions } from './operator.js';
export { newProgress, silentProgress, type Progress, type ProgressOptions } from './progress.js';
export { failureCode } from './http.js';
export { PhaseRecorder, formatMs, formatPhases, formatRate, formatTable, median, percentile } from './stats.js';
export type { PhaseStats } from './stats.js';
