/**
 * Device side of keyfleet attestation (docs/protocol-attestation.md): measure the configured
 * files and answer a challenge with an Entity Attestation Token signed by the certified key.
 *
 * @packageDocumentation
 */
export {
  DebugStatus,
  EvidenceProfile,
  EvidenceType,
  MeasurementsContentFormat,
  SemverScheme,
  UeidTypeRand,
  type EvidenceClaims,
  type FileMeasurement,
} from '@keyfleet/protocol';
export {
  EvidenceError,
  EvidenceErrorCode,
  collectEvidence,
  measureFiles,
  observedDebugStatus,
  x5cOf,
  type EvidenceOptions,
  type MeasuredFile,
} from './evidence';
