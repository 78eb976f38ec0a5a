import { createPrivateKey } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { connect, GatewayError as FabricGatewayError, hash, signers, type Contract } from '@hyperledger/fabric-gateway';
import {
  type AttestationBatchRecord,
  type AttestationRecord,
  type DeviceRecord,
  type DueKey,
  errorCodeOf,
  type HistoryEntry,
  type KeyRecord,
  type Page,
  TransactionName,
  type TrustAnchorRecord,
} from '@keyfleet/protocol';
import {
  chainHeight,
  decodeBlock,
  GatewayError,
  GatewayErrorCode,
  readOrganization,
  type BlockTransaction,
} from '@keyfleet/gateway';

/** Where a transaction sits on the chain, as the ledger's system chaincode (qscc) reports it. */
export interface TransactionLocation {
  readonly TxID: string;
  readonly BlockNumber: number;
  /** The committing peer's validation code: 0 is VALID; anything else did not change the state. */
  readonly ValidationCode: number;
  readonly Chaincode: string;
  /** The contract function, e.g. `EnrolDevice`. */
  readonly Method: string;
  /** The transaction's arguments as submitted: the request JSON and its JWS (two for a replacement). */
  readonly Args: readonly string[];
  /** The MSP of the identity that submitted the transaction. */
  readonly CreatorMSP: string;
}

/**
 * The contract's reads and qscc's block lookup, for the auditor's console: typed, read-only. A
 * record that does not exist is `null`; other refusals are LEDGER_REJECTED with the chaincode's code.
 */
export interface AuditorLedger {
  anchors(): Promise<TrustAnchorRecord[]>;
  devicesByGroup(group: string, pageSize: number, bookmark: string): Promise<Page<DeviceRecord>>;
  device(deviceId: string): Promise<DeviceRecord | null>;
  /** Fabric's history of the device record, newest first. */
  deviceHistory(deviceId: string): Promise<HistoryEntry<DeviceRecord>[]>;
  key(keyId: string): Promise<KeyRecord | null>;
  keyHistory(keyId: string): Promise<HistoryEntry<KeyRecord>[]>;
  attestations(deviceId: string, pageSize: number, bookmark: string): Promise<Page<AttestationRecord>>;
  batch(batchId: string): Promise<AttestationBatchRecord | null>;
  transaction(txId: string): Promise<TransactionLocation | null>;
  /** Keys whose next rotation is due at or before `at` (ISO 8601), a page of their ids. */
  keysDue(at: string, pageSize: number, bookmark: string): Promise<Page<DueKey>>;
  /** The channel's height and its blocks (qscc): what the fleet's figures are derived from. */
  height(): Promise<number>;
  block(blockNumber: number): Promise<BlockTransaction[]>;
  /** The contract's chaincode name (namespace) this ledger reads. */
  readonly chaincode: string;
  close(): void;
}

export interface FabricAuditorLedgerOptions {
  readonly profilePath: string;
  /** The organisation whose peer is asked (`Org2`). */
  readonly org: string;
  /** A file identity listed under `organizations.<org>.identities` (`auditor`). */
  readonly identity: string;
  readonly chaincode?: string | undefined;
}

interface FileIdentity {
  readonly certificate: string;
  readonly privateKeyDir: string;
}

/** The file identity's certificate and key, as network/network.sh lists them in connection.json. */
function readFileIdentity(profilePath: string, org: string, name: string): { certificate: Buffer; key: string } {
  const profile = JSON.parse(readFileSync(profilePath, 'utf8')) as {
    organizations: Record<string, { identities?: Record<string, FileIdentity> }>;
  };
  const identity = profile.organizations[org]?.identities?.[name];
  if (identity === undefined) {
    throw new GatewayError(GatewayErrorCode.ConfigInvalid, `no identity ${name} of ${org} in ${profilePath}`);
  }
  const at = (path: string) => resolve(dirname(profilePath), path);
  const keyDir = at(identity.privateKeyDir);
  const keyFile = readdirSync(keyDir).find((file) => file.endsWith('_sk')) ?? readdirSync(keyDir)[0];
  if (keyFile === undefined) {
    throw new GatewayError(GatewayErrorCode.ConfigInvalid, `no private key in ${keyDir}`);
  }
  return { certificate: readFileSync(at(identity.certificate)), key: readFileSync(join(keyDir, keyFile), 'utf8') };
}

/**
 * Reads the ledger through the organisation's own peer with its own file identity (an auditor of
 * Org2), never through keyfleet's gateway.
 */
export function newFabricAuditorLedger(options: FabricAuditorLedgerOptions): AuditorLedger {
  const org = readOrganization(options.profilePath, options.org);
  const identity = readFileIdentity(options.profilePath, options.org, options.identity);
  const peer = org.peers[0];
  if (peer === undefined) throw new Error('unreachable: readOrganization checks for a peer');
  const client = new grpc.Client(peer.endpoint, grpc.credentials.createSsl(readFileSync(peer.tlsRootCert)), {
    'grpc.ssl_target_name_override': peer.hostAlias,
  });
  const gateway = connect({
    client,
    identity: { mspId: org.mspId, credentials: identity.certificate },
    signer: signers.newPrivateKeySigner(createPrivateKey(identity.key)),
    hash: hash.sha256,
    evaluateOptions: () => ({ deadline: Date.now() + 10_000 }),
  });
  const network = gateway.getNetwork(org.channel);
  const chaincode = options.chaincode ?? org.chaincode;
  const contract = network.getContract(chaincode);
  const qscc = network.getContract('qscc');
  const decoder = new TextDecoder();
  // A committed transaction never moves: its location is cached for the life of the process.
  const locations = new Map<string, TransactionLocation>();

  const evaluate = async <T>(of: Contract, transaction: string, ...args: string[]): Promise<T> => {
    try {
      return JSON.parse(decoder.decode(await of.evaluateTransaction(transaction, ...args))) as T;
    } catch (err) {
      throw toGatewayError(err);
    }
  };
  const orNull = async <T>(read: Promise<T>): Promise<T | null> => {
    try {
      return await read;
    } catch (err) {
      if (err instanceof GatewayError && err.detail?.endsWith('_NOT_FOUND') === true) return null;
      throw err;
    }
  };

  return {
    anchors: () => evaluate(contract, TransactionName.ListTrustAnchors),
    devicesByGroup: (group, pageSize, bookmark) =>
      evaluate(contract, TransactionName.ListDevicesByGroup, group, String(pageSize), bookmark),
    device: (id) => orNull(evaluate(contract, TransactionName.GetDevice, id)),
    deviceHistory: async (id) => (await orNull(evaluate(contract, TransactionName.GetDeviceHistory, id))) ?? [],
    key: (id) => orNull(evaluate(contract, TransactionName.GetKey, id)),
    keyHistory: async (id) => (await orNull(evaluate(contract, TransactionName.GetKeyHistory, id))) ?? [],
    attestations: (deviceId, pageSize, bookmark) =>
      evaluate(contract, TransactionName.ListAttestations, deviceId, String(pageSize), bookmark),
    batch: (id) => orNull(evaluate(contract, TransactionName.GetAttestationBatch, id)),
    async transaction(txId) {
      const cached = locations.get(txId);
      if (cached) return cached;
      let bytes: Uint8Array;
      try {
        bytes = await qscc.evaluateTransaction('GetBlockByTxID', org.channel, txId);
      } catch (err) {
        // qscc answers an unknown transaction id with an error of its own, not a code of ours.
        if (err instanceof FabricGatewayError && /not found|no such transaction/i.test(messagesOf(err))) return null;
        throw toGatewayError(err);
      }
      const tx = decodeBlock(bytes).find((t) => t.transactionId === txId);
      if (tx === undefined) return null;
      const location: TransactionLocation = {
        TxID: txId,
        BlockNumber: tx.blockNumber,
        ValidationCode: tx.validationCode,
        Chaincode: tx.chaincode,
        Method: tx.method,
        Args: tx.args,
        CreatorMSP: tx.creator.mspId,
      };
      locations.set(txId, location);
      return location;
    },
    keysDue: (at, pageSize, bookmark) =>
      evaluate(contract, TransactionName.ListKeysDueForRotation, at, String(pageSize), bookmark),
    async height() {
      try {
        return chainHeight(await qscc.evaluateTransaction('GetChainInfo', org.channel));
      } catch (err) {
        throw toGatewayError(err);
      }
    },
    async block(blockNumber) {
      try {
        return decodeBlock(await qscc.evaluateTransaction('GetBlockByNumber', org.channel, String(blockNumber)));
      } catch (err) {
        throw toGatewayError(err);
      }
    },
    chaincode,
    close() {
      gateway.close();
      client.close();
    },
  };
}

function messagesOf(err: FabricGatewayError): string {
  return [err.message, ...err.details.map((d) => d.message)].join(' | ');
}

function toGatewayError(err: unknown): GatewayError {
  if (err instanceof FabricGatewayError) {
    // Fabric wraps the chaincode's message ("2 UNKNOWN: … chaincode response 500, KEY_NOT_FOUND: …"):
    // the first of our codes anywhere in it is the answer.
    const code = messagesOf(err)
      .match(/[A-Z][A-Z_]+[A-Z]: /g)
      ?.map((candidate) => errorCodeOf(candidate))
      .find((found) => found !== undefined);
    if (code !== undefined) {
      return new GatewayError(GatewayErrorCode.LedgerRejected, `the ledger refused the read (${code})`, code, {
        cause: err,
      });
    }
  }
  return new GatewayError(GatewayErrorCode.LedgerUnavailable, 'the ledger read failed', undefined, { cause: err });
}
