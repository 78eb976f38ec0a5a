import type { AttestationBatchRecord, ReferenceValuesRecord, TrustAnchorRecord } from '@keyfleet/protocol';
import type { AppraisalOutcome } from '../attestation';
import type { Principal } from '../auth/bearer';
import type { AckResult, ProvisionResult, RotationResult, RouteBinding } from '../rotation';
import type { DeviceKeyDue } from '../scheduler';
import type { ApplicationKeyRotation, KeyOperations } from '../key-service';
import type { HsmClusterAdmin } from '../hsm/cluster/cluster-admin';
import type { ShardsApi } from './shards';
import type { ShardMovesApi } from './shard-moves';

/** A record read from the ledger, with the HSM metadata signature that any client can verify. */
export interface SignedRecord<T> {
  readonly record: T;
  /** Compact JWS (ES256) by the metadata-signing trust anchor over the record's canonical request. */
  readonly signature: string | null;
}

export interface Page<T> {
  readonly items: readonly T[];
  /** Pass back to get the next page; empty when there is none. */
  readonly bookmark: string;
}

export interface HistoryEntry {
  readonly transactionId: string;
  readonly timestamp: string;
  readonly isDelete: boolean;
  readonly value: unknown;
}

export interface EnrolmentTokenRequest {
  readonly deviceId: string;
  readonly group: string;
  readonly location: string;
  readonly function: string;
  readonly ttlSeconds?: number;
}

export interface EnrolmentRequest {
  readonly enrolmentToken: string;
  /** PKCS#10, PEM, with subject CN = the device id the token was issued for. */
  readonly csr: string;
}

export interface Enrolment {
  readonly deviceId: string;
  readonly certificate: string;
  readonly caCertificate: string;
  readonly certificateFingerprint: string;
  readonly transactionId: string;
  /** SPKI PEM of the HSM key the device master key is agreed with (ECDH). */
  readonly keyExchangePublicKey: string;
  /** SPKI PEM of the metadata-signing trust anchor, which the device pins. */
  readonly metadataSigningPublicKey: string;
}

export const DeviceAction = { Suspend: 'suspend', Reinstate: 'reinstate', Revoke: 'revoke' } as const;
export type DeviceAction = (typeof DeviceAction)[keyof typeof DeviceAction];

/** Device enrolment and lifecycle: what the REST API and the CLI ask of the gateway. */
export interface DeviceService {
  issueEnrolmentToken(by: Principal, request: EnrolmentTokenRequest): Promise<{ token: string; expiresAt: string }>;
  enrol(request: EnrolmentRequest): Promise<Enrolment>;
  get(by: Principal, deviceId: string): Promise<SignedRecord<unknown>>;
  list(by: Principal, group: string, pageSize: number, bookmark: string): Promise<Page<unknown>>;
  changeStatus(
    by: Principal,
    deviceId: string,
    action: DeviceAction,
    reason: string,
  ): Promise<{ transactionId: string; record: unknown }>;
  history(by: Principal, deviceId: string): Promise<readonly HistoryEntry[]>;
}

export interface KeyRegistration {
  readonly keyId: string;
  /** Key material is generated in the HSM; these are the kinds it can make here. */
  readonly algorithm: 'AES-256' | 'EC-P256';
  readonly purpose: 'encrypt' | 'sign' | 'wrap';
  readonly owner: { readonly type: 'application' | 'device'; readonly id: string };
  readonly rotationIntervalSeconds: number;
  readonly retentionSeconds: number;
  readonly accessPolicy: {
    readonly read: readonly PolicyPrincipal[];
    readonly use: readonly PolicyPrincipal[];
    readonly rotate: readonly PolicyPrincipal[];
    readonly administer: readonly PolicyPrincipal[];
  };
}

/** Who a key's access policy names: an MSP and role, optionally one identity (certificate CN). */
export interface PolicyPrincipal {
  readonly mspId: string;
  readonly role: 'operator' | 'verifier' | 'auditor' | 'application' | 'device';
  readonly id?: string;
}

/** Key registration and metadata. */
export interface KeyService {
  register(by: Principal, request: KeyRegistration): Promise<{ transactionId: string; record: unknown }>;
  get(by: Principal, keyId: string): Promise<SignedRecord<unknown>>;
  history(by: Principal, keyId: string): Promise<readonly HistoryEntry[]>;
  /**
   * Marks one key version compromised (KMIP 2.1 §3.31, Revoke with reason keyCompromise): recorded
   * on the ledger with who asked and why, once. Asking again for a compromised version answers
   * `already-compromised` and writes nothing. Needs the key's Administer permission.
   * @throws GatewayError NOT_FOUND (KEY_NOT_FOUND, VERSION_NOT_FOUND), FORBIDDEN/ACCESS_DENIED,
   *   LEDGER_REJECTED/ILLEGAL_TRANSITION (a destroyed version)
   */
  markCompromised(by: Principal, keyId: string, version: number, reason: string): Promise<CompromiseResult>;
}

export interface CompromiseResult {
  readonly outcome: 'compromised' | 'already-compromised';
  readonly keyId: string;
  readonly version: number;
  /** The transaction that recorded the compromise; null when it was already recorded. */
  readonly transactionId: string | null;
  /** When the ledger recorded it (its transaction time). */
  readonly compromisedAt: string;
  /** When the key's compromise trigger made it due for rotation, if it has one. */
  readonly nextRotationDue: string | null;
}

export interface Health {
  readonly hsm: boolean;
  readonly ledger: boolean;
}

/** Device-key rotation (docs/protocol-rotation.md). */
export interface RotationApi {
  provisionDeviceKey(request: { deviceId: string; keyId: string }): Promise<ProvisionResult>;
  rotateDeviceKey(requestJws: string, route: RouteBinding): Promise<RotationResult>;
  acknowledgeRotation(ackJws: string, route: RouteBinding): Promise<AckResult>;
  /** A device's signed check-in, answered with its keys that are due for rotation. */
  checkIn(checkInJws: string, route: RouteBinding): Promise<{ dueKeys: readonly DeviceKeyDue[] }>;
}

export interface ReferenceValuesRequest {
  readonly policyId: string;
  readonly measurements: readonly { readonly name: string; readonly algorithm: string; readonly digest: string }[];
}

/** What an appraisal answers a device: the EAR, the verdict, and where the result is on the ledger. */
export type AppraisalAnswer = Pick<
  AppraisalOutcome,
  'ear' | 'status' | 'deviceId' | 'result' | 'recorded' | 'actions' | 'findings'
>;

/**
 * Device attestation (docs/protocol-attestation.md): what the verifier service answers, and what
 * the operator gateway answers by forwarding the device-facing calls to it.
 */
export interface AttestationApi {
  challenge(deviceId: string): Promise<{ challenge: string; expiresAt: string }>;
  appraise(evidence: string): Promise<AppraisalAnswer>;
  getReferenceValues(group: string): Promise<ReferenceValuesRecord>;
  /** A Merkle batch record, for auditors checking inclusion proofs. */
  getBatch(batchId: string): Promise<AttestationBatchRecord>;
  /** The ledger's trust anchors: the HSM public keys clients pin. */
  trustAnchors(): Promise<readonly TrustAnchorRecord[]>;
}

/** The operator's side of attestation: the gateway also sets the reference values (Org1, metadata anchor). */
export interface OperatorAttestationApi extends AttestationApi {
  setReferenceValues(
    by: Principal,
    group: string,
    request: ReferenceValuesRequest,
  ): Promise<{ transactionId: string; record: ReferenceValuesRecord }>;
}

export interface Services {
  readonly devices: DeviceService;
  readonly keys: KeyService;
  readonly rotation: RotationApi;
  readonly attestation: OperatorAttestationApi;
  readonly keyOperations: KeyOperations;
  readonly keyRotation: ApplicationKeyRotation;
  /** With KEYFLEET_HSM_REPLICAS: the HSM cluster's state, and tokens joined at run time. */
  readonly hsmCluster?: HsmClusterAdmin;
  /** The shard map and each shard's load (`GET /v1/shards`); absent in unit tests that need none. */
  readonly shards?: ShardsApi;
  /** Live re-sharding (`POST /v1/shards/moves`); absent on an unsharded network. */
  readonly shardMoves?: ShardMovesApi;
  health(): Promise<Health>;
}
