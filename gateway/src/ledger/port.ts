/**
 * keyfleet's contract as the gateway uses it: one typed method per transaction, grouped by the
 * record it is about (`ledger.keys.get(id)`, `ledger.devices.enrol(fields)`, …). This is the only
 * place in the gateway that names a transaction or the contract's "not found" codes; everything
 * above it speaks records and requests of @keyfleet/protocol.
 *
 * Reads come in two kinds: `get` answers null when the record does not exist, `require` throws
 * NOT_FOUND with the contract's code in `detail` (the caller's 404). Every other refusal stays the
 * LEDGER_REJECTED error the transport made; {@link ledgerRefusalCode} reads its code.
 */
import {
  type AttestationBatchRecord,
  type AttestationRecord,
  type ConsumeNonceRequest,
  type DestroyKeyVersionRequest,
  type DeviceRecord,
  type DueKey,
  type EnrolDeviceRequest,
  ErrorCode,
  type HistoryEntry,
  HsmClusterAction,
  type HsmClusterEventRecord,
  type HsmFailoverRequest,
  type HsmReplicationRequest,
  type KeyRecord,
  type MarkKeyCompromisedRequest,
  type NonceRecord,
  type Page,
  type RecordAttestationBatchRequest,
  type RecordAttestationRequest,
  type RecordRotationAcksRequest,
  type ReferenceValuesRecord,
  type RegisterKeyRequest,
  type RegisterTrustAnchorRequest,
  type ReinstateDeviceRequest,
  type RevokeDeviceRequest,
  type RotateKeyRequest,
  type RotationAckOutcome,
  type SetReferenceValuesRequest,
  type SuspendDeviceRequest,
  TransactionName,
  type TrustAnchorRecord,
} from '@keyfleet/protocol';
import { GatewayError, GatewayErrorCode } from '../errors';
import type { LedgerAction, LedgerClient, Written } from './ledger-client';

/** A write request without the envelope the ledger client adds (`Action`, `RequestID`, `Principal`). */
export type Fields<R> = Omit<R, 'Action' | 'RequestID'>;

export interface Ledger {
  readonly anchors: {
    list(): Promise<TrustAnchorRecord[]>;
    register(fields: Fields<RegisterTrustAnchorRequest>): Promise<Written<TrustAnchorRecord>>;
  };
  readonly devices: {
    get(deviceId: string): Promise<DeviceRecord | null>;
    require(deviceId: string): Promise<DeviceRecord>;
    history(deviceId: string): Promise<HistoryEntry<DeviceRecord>[]>;
    listByGroup(group: string, pageSize: number, bookmark: string): Promise<Page<DeviceRecord>>;
    /**
     * `Shard` is the router's to decide (shard-router.ts places the device by the shard map and
     * writes its shard there); on an unsharded ledger it is 0.
     */
    enrol(fields: Omit<Fields<EnrolDeviceRequest>, 'Shard'>): Promise<Written<DeviceRecord>>;
    /** Suspend, reinstate or revoke; NOT_FOUND when there is no such device. */
    suspend(fields: Fields<SuspendDeviceRequest>): Promise<Written<DeviceRecord>>;
    reinstate(fields: Fields<ReinstateDeviceRequest>): Promise<Written<DeviceRecord>>;
    revoke(fields: Fields<RevokeDeviceRequest>): Promise<Written<DeviceRecord>>;
  };
  readonly keys: {
    get(keyId: string): Promise<KeyRecord | null>;
    require(keyId: string): Promise<KeyRecord>;
    history(keyId: string): Promise<HistoryEntry<KeyRecord>[]>;
    dueForRotation(at: string, pageSize: number, bookmark: string): Promise<Page<DueKey>>;
    register(fields: Fields<RegisterKeyRequest>): Promise<Written<KeyRecord>>;
    rotate(fields: Fields<RotateKeyRequest>): Promise<Written<KeyRecord>>;
    markCompromised(fields: Fields<MarkKeyCompromisedRequest>): Promise<Written<KeyRecord>>;
    destroyVersion(fields: Fields<DestroyKeyVersionRequest>): Promise<Written<KeyRecord>>;
  };
  readonly nonces: {
    get(nonceDigest: string): Promise<NonceRecord | null>;
    consume(fields: Fields<ConsumeNonceRequest>): Promise<Written<NonceRecord>>;
    recordRotationAcks(fields: Fields<RecordRotationAcksRequest>): Promise<Written<{ Acks: RotationAckOutcome[] }>>;
  };
  readonly attestations: {
    get(deviceId: string, resultId: string): Promise<AttestationRecord | null>;
    record(fields: Fields<RecordAttestationRequest>): Promise<Written<AttestationRecord>>;
    recordBatch(fields: Fields<RecordAttestationBatchRequest>): Promise<Written<AttestationBatchRecord>>;
    getBatch(batchId: string): Promise<AttestationBatchRecord | null>;
    requireBatch(batchId: string): Promise<AttestationBatchRecord>;
    /** Throws unless the contract proves the result (canonical JSON) is in the batch by the proof. */
    verifyInclusion(batchId: string, resultJson: string, proofJson: string): Promise<void>;
  };
  readonly referenceValues: {
    get(group: string): Promise<ReferenceValuesRecord | null>;
    require(group: string): Promise<ReferenceValuesRecord>;
    set(fields: Fields<SetReferenceValuesRequest>): Promise<Written<ReferenceValuesRecord>>;
  };
  /** The `hsm-cluster` contract: the gateway's HSM replications and failovers (docs/hsm-cluster.md). */
  readonly hsmCluster: {
    recordReplication(fields: Fields<HsmReplicationRequest>): Promise<Written<HsmClusterEventRecord>>;
    recordFailover(fields: Fields<HsmFailoverRequest>): Promise<Written<HsmClusterEventRecord>>;
    list(clusterId: string): Promise<HsmClusterEventRecord[]>;
  };
}

/** The contract's code of a ledger refusal (LEDGER_REJECTED), or undefined for any other error. */
export function ledgerRefusalCode(err: unknown): ErrorCode | undefined {
  return err instanceof GatewayError && err.code === GatewayErrorCode.LedgerRejected
    ? (err.detail as ErrorCode | undefined)
    : undefined;
}

/** The typed port over a ledger client. Stateless: wrapping a client twice is harmless. */
export function ledgerPort(client: LedgerClient): Ledger {
  const T = TransactionName;
  const read = <R>(transaction: LedgerAction, ...args: string[]): Promise<R> => client.read<R>(transaction, ...args);
  const write =
    <R>(transaction: LedgerAction) =>
    (fields: object): Promise<Written<R>> =>
      client.write<R>(transaction, fields as Readonly<Record<string, unknown>>);

  const orNull = async <R>(notFound: ErrorCode, promise: Promise<R>): Promise<R | null> => {
    try {
      return await promise;
    } catch (err) {
      if (ledgerRefusalCode(err) === notFound) return null;
      throw err;
    }
  };
  const orNotFound = async <R>(notFound: ErrorCode, promise: Promise<R>): Promise<R> => {
    try {
      return await promise;
    } catch (err) {
      if (ledgerRefusalCode(err) === notFound && err instanceof GatewayError) {
        throw new GatewayError(GatewayErrorCode.NotFound, err.message, notFound, { cause: err });
      }
      throw err;
    }
  };
  const device = (id: string) => read<DeviceRecord>(T.GetDevice, id);
  const key = (id: string) => read<KeyRecord>(T.GetKey, id);
  const batch = (id: string) => read<AttestationBatchRecord>(T.GetAttestationBatch, id);
  const referenceValues = (group: string) => read<ReferenceValuesRecord>(T.GetReferenceValues, group);

  return {
    anchors: {
      list: () => read<TrustAnchorRecord[]>(T.ListTrustAnchors),
      register: write(T.RegisterTrustAnchor),
    },
    devices: {
      get: (id) => orNull(ErrorCode.DeviceNotFound, device(id)),
      require: (id) => orNotFound(ErrorCode.DeviceNotFound, device(id)),
      history: (id) => orNotFound(ErrorCode.DeviceNotFound, read<HistoryEntry<DeviceRecord>[]>(T.GetDeviceHistory, id)),
      listByGroup: (group, pageSize, bookmark) =>
        read<Page<DeviceRecord>>(T.ListDevicesByGroup, group, String(pageSize), bookmark),
      enrol: (fields) => write<DeviceRecord>(T.EnrolDevice)({ Shard: 0, ...fields }),
      suspend: (fields) => orNotFound(ErrorCode.DeviceNotFound, write<DeviceRecord>(T.SuspendDevice)(fields)),
      reinstate: (fields) => orNotFound(ErrorCode.DeviceNotFound, write<DeviceRecord>(T.ReinstateDevice)(fields)),
      revoke: (fields) => orNotFound(ErrorCode.DeviceNotFound, write<DeviceRecord>(T.RevokeDevice)(fields)),
    },
    keys: {
      get: (id) => orNull(ErrorCode.KeyNotFound, key(id)),
      require: (id) => orNotFound(ErrorCode.KeyNotFound, key(id)),
      history: (id) => orNotFound(ErrorCode.KeyNotFound, read<HistoryEntry<KeyRecord>[]>(T.GetKeyHistory, id)),
      dueForRotation: (at, pageSize, bookmark) =>
        read<Page<DueKey>>(T.ListKeysDueForRotation, at, String(pageSize), bookmark),
      register: write(T.RegisterKey),
      rotate: write(T.RotateKey),
      markCompromised: write(T.MarkKeyCompromised),
      destroyVersion: write(T.DestroyKeyVersion),
    },
    nonces: {
      get: (digest) => orNull(ErrorCode.NonceNotFound, read<NonceRecord>(T.GetNonce, digest)),
      consume: write(T.ConsumeNonce),
      recordRotationAcks: write(T.RecordRotationAcks),
    },
    attestations: {
      get: (deviceId, resultId) =>
        orNull(ErrorCode.AttestationNotFound, read<AttestationRecord>(T.GetAttestation, deviceId, resultId)),
      record: write(T.RecordAttestation),
      recordBatch: write(T.RecordAttestationBatch),
      getBatch: (id) => orNull(ErrorCode.BatchNotFound, batch(id)),
      requireBatch: (id) => orNotFound(ErrorCode.BatchNotFound, batch(id)),
      verifyInclusion: async (batchId, resultJson, proofJson) => {
        await read<unknown>(T.VerifyAttestationInclusion, batchId, resultJson, proofJson);
      },
    },
    referenceValues: {
      get: (group) => orNull(ErrorCode.ReferenceValuesNotFound, referenceValues(group)),
      require: (group) => orNotFound(ErrorCode.ReferenceValuesNotFound, referenceValues(group)),
      set: write(T.SetReferenceValues),
    },
    hsmCluster: {
      recordReplication: write(HsmClusterAction.RecordHsmReplication),
      recordFailover: write(HsmClusterAction.RecordHsmFailover),
      list: (clusterId) => read<HsmClusterEventRecord[]>(HsmClusterAction.ListHsmClusterEvents, clusterId),
    },
  };
}
