/**
 * The HSM cluster's ledger records (docs/hsm-cluster.md), shared by the chaincode's `hsm-cluster`
 * contract and the gateway that writes them: the contract's name, its transactions, the request
 * checks and the record types.
 */
import { AnchorKind, Role, type RequestPrincipal } from './types.js';
import {
  Limits,
  arrayOf,
  id,
  isoTime,
  literal,
  object,
  oneOf,
  str,
  text,
  type Check,
  type Checked,
} from './validate.js';

export const HsmClusterContractName = 'hsm-cluster';

export const HsmClusterTransaction = {
  RecordHsmReplication: 'RecordHsmReplication',
  RecordHsmFailover: 'RecordHsmFailover',
  ListHsmClusterEvents: 'ListHsmClusterEvents',
} as const;

/** The transactions as clients call them: with the contract's namespace (`hsm-cluster:<name>`). */
export const HsmClusterAction = {
  RecordHsmReplication: `${HsmClusterContractName}:${HsmClusterTransaction.RecordHsmReplication}`,
  RecordHsmFailover: `${HsmClusterContractName}:${HsmClusterTransaction.RecordHsmFailover}`,
  ListHsmClusterEvents: `${HsmClusterContractName}:${HsmClusterTransaction.ListHsmClusterEvents}`,
} as const;
export type HsmClusterAction = (typeof HsmClusterAction)[keyof typeof HsmClusterAction];

/** The principal the operator gateway writes its cluster's records for. */
export const HsmClusterService = 'gateway.hsm-cluster';
/** The principal Org2's verifier writes its own cluster's records for. */
export const VerifierHsmClusterService = 'verifier.hsm-cluster';

/**
 * Who writes HSM cluster records, for which principal, signed by which kind of trust anchor: the
 * operator gateway for its cluster with the metadata-signing anchor, the verifier for its own
 * cluster with its verifier anchor. One rule for the contract and the services that write.
 */
export const HsmClusterWriters: Readonly<
  Partial<Record<Role, { readonly service: string; readonly anchorKind: AnchorKind }>>
> = {
  [Role.Operator]: { service: HsmClusterService, anchorKind: AnchorKind.MetadataSigning },
  [Role.Verifier]: { service: VerifierHsmClusterService, anchorKind: AnchorKind.Verifier },
};

const hexOf = (min: number, max: number, what: string): Check<string> =>
  str({ min, max, pattern: /^(?:[0-9a-f]{2})+$/, what });
/** A cluster member's token label as the ledger takes it (PKCS#11 labels are at most 32 bytes). */
export const HsmTokenLabelPattern = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,31}$/;
const tokenName = str({ max: 32, pattern: HsmTokenLabelPattern, what: 'a token label' });
const requestId = str({ max: Limits.IdLength, pattern: /^[A-Za-z0-9._:-]+$/, what: 'a request id' });

/** One key copied to a target token, and its copy's check value there (computed by that token). */
export interface HsmReplicatedKey {
  readonly Label: string;
  readonly ID: string;
  readonly Type: 'ec-p256' | 'aes-256' | 'hmac-sha256';
  readonly CheckValue: string;
}

const replicatedKey: Check<HsmReplicatedKey> = object({
  Label: str({ max: 256, pattern: /^[\x21-\x7e]+$/, what: 'a key label' }),
  ID: hexOf(2, 128, 'a CKA_ID in lowercase hex'),
  Type: oneOf(['ec-p256', 'aes-256', 'hmac-sha256'] as const),
  // AES and HMAC: 3 bytes; EC: SHA-256 of the public point.
  CheckValue: str({ min: 6, max: 64, pattern: /^(?:[0-9a-f]{6}|[0-9a-f]{64})$/, what: 'a check value' }),
});

export const hsmReplication = object({
  // The Action names the transaction as the gateway calls it: with the contract's namespace.
  Action: literal(HsmClusterAction.RecordHsmReplication),
  RequestID: requestId,
  ClusterID: id,
  Source: tokenName,
  Target: tokenName,
  Reason: oneOf(['join', 'write-through'] as const),
  KekCheckValue: hexOf(6, 6, "the cluster KEK's 3-byte check value"),
  Keys: arrayOf(replicatedKey, { max: 500 }),
  At: isoTime,
});

export const hsmFailover = object({
  Action: literal(HsmClusterAction.RecordHsmFailover),
  RequestID: requestId,
  ClusterID: id,
  From: tokenName,
  To: tokenName,
  Reason: text,
  At: isoTime,
});

export type HsmReplicationRequest = Checked<typeof hsmReplication>;
export type HsmFailoverRequest = Checked<typeof hsmFailover>;

/** What the ledger keeps for each replication or failover, in the order they were recorded. */
export type HsmClusterEventRecord =
  | ({ readonly DocType: 'hsm-replication' } & Omit<Checked<typeof hsmReplication>, 'Action'> & HsmClusterRecorded)
  | ({ readonly DocType: 'hsm-failover' } & Omit<Checked<typeof hsmFailover>, 'Action'> & HsmClusterRecorded);

export interface HsmClusterRecorded {
  readonly TxID: string;
  readonly RecordedBy: string;
  readonly Principal: RequestPrincipal;
}
