/**
 * Device-key rotation, gateway side (docs/protocol-rotation.md): verify the device's signed
 * request, make and wrap the new version inside the HSM, commit it on the ledger, answer with a
 * response signed by the HSM metadata-signing key; record the device's acknowledgement; reconcile
 * what a crash left in the HSM.
 *
 * @packageDocumentation
 */
export { newRotationService, RotationErrorDetail } from './service';
export { newAckRecorder } from './ack-recorder';
export type { AckRecorder, AckRecorderOptions, RecordedAck, RotationAck } from './ack-recorder';
export type {
  AckResult,
  ProvisionRequest,
  ProvisionResult,
  RotationResult,
  RotationService,
  RotationServiceOptions,
  RouteBinding,
} from './service';
export type { ReconcileResult } from '../key-versions/engine';
export {
  KekIv,
  RotationLabel,
  RotationMessageType,
  kekDerivationData,
  nextKeyCommitment,
  rotationAckDigest,
  rotationNonceDigest,
  versionLabel,
} from '@keyfleet/protocol';
export type { RotationAckClaims, RotationRequestClaims, RotationResponseClaims } from '@keyfleet/protocol';
