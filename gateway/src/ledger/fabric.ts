import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { setTimeout } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import {
  CommitError,
  CommitStatusError,
  connect,
  EndorseError,
  GatewayError as FabricGatewayError,
  hash,
  StatusCode,
  type Status,
  type Transaction,
  type Gateway,
  type Signer,
} from '@hyperledger/fabric-gateway';
import { GatewayError, GatewayErrorCode } from '../errors';
import type { LedgerEvents } from './events';
import { chainHeight } from './blocks';
import { openFabricEvents } from './fabric-events';
import { ledgerRefusal, type LedgerTransport } from './transport';

/**
 * The connection description that network/network.sh writes (docs/gateway.md, "Connection
 * description"). Paths inside it are relative to the file.
 */
export interface ConnectionProfile {
  readonly channel: string;
  readonly chaincode: string;
  /** `network.sh up --shards N`: the shard channels (index 0 = `channel`) and the governance channel. */
  readonly channels?: { readonly shards: readonly string[]; readonly governance: string | null };
  readonly organizations: Readonly<Record<string, OrganizationProfile>>;
}

/** The channels of a sharded network; null for an unsharded one (no governance channel). */
export interface ShardChannels {
  readonly shards: readonly string[];
  readonly governance: string;
}

export interface OrganizationProfile {
  readonly mspId: string;
  readonly peers: readonly PeerProfile[];
  readonly ca: {
    readonly url: string;
    readonly caName: string;
    readonly tlsRootCert: string;
    /** The organisation's CA certificate: the issuer of its members' identities. */
    readonly caCert: string;
  };
  /** Registered, not yet enrolled identities: their secrets, for HSM-held keys to enrol with. */
  readonly enrolments: Readonly<Record<string, { readonly role: string; readonly secretFile: string }>>;
  /** Role identities the CA enrolled as files (for Fabric's CLI, auditors and tests). */
  readonly identities: Readonly<Record<string, { readonly certificate: string; readonly privateKeyDir: string }>>;
}

export interface PeerProfile {
  readonly name: string;
  readonly endpoint: string;
  readonly hostAlias: string;
  readonly tlsRootCert: string;
}

function readProfile(profilePath: string): ConnectionProfile {
  try {
    return JSON.parse(readFileSync(profilePath, 'utf8')) as ConnectionProfile;
  } catch (err) {
    throw new GatewayError(
      GatewayErrorCode.ConfigInvalid,
      `the Fabric connection description ${profilePath} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'not JSON'}); is the network up? (network/network.sh up)`,
    );
  }
}

/**
 * The shard channels and the governance channel of the network (docs/network.md, `up --shards N`);
 * null when the network has no governance channel, i.e. is unsharded.
 */
export function readShardChannels(profilePath: string): ShardChannels | null {
  const { channel, channels } = readProfile(profilePath);
  if (channels?.governance == null) return null;
  if (channels.shards.length === 0 || channels.shards[0] !== channel) {
    throw new GatewayError(
      GatewayErrorCode.ConfigInvalid,
      `${profilePath}: channels.shards must start with the channel ${channel} (shard 0)`,
    );
  }
  return { shards: channels.shards, governance: channels.governance };
}

/** An organisation of the connection description, with its paths made absolute. */
export function readOrganization(
  profilePath: string,
  org: string,
): OrganizationProfile & { channel: string; chaincode: string } {
  const profile = readProfile(profilePath);
  const found = profile.organizations[org];
  if (!found || found.peers.length === 0) {
    throw new GatewayError(GatewayErrorCode.ConfigInvalid, `no peer of ${org} in ${profilePath}`);
  }
  const at = (path: string) => resolve(dirname(profilePath), path);
  return {
    ...found,
    channel: profile.channel,
    chaincode: profile.chaincode,
    peers: found.peers.map((peer) => ({ ...peer, tlsRootCert: at(peer.tlsRootCert) })),
    ca: { ...found.ca, tlsRootCert: at(found.ca.tlsRootCert), caCert: at(found.ca.caCert) },
    enrolments: Object.fromEntries(
      Object.entries(found.enrolments).map(([id, e]) => [id, { ...e, secretFile: at(e.secretFile) }]),
    ),
    identities: Object.fromEntries(
      Object.entries(found.identities).map(([name, i]) => [
        name,
        { certificate: at(i.certificate), privateKeyDir: at(i.privateKeyDir) },
      ]),
    ),
  };
}

export interface FabricTransportOptions {
  readonly profilePath: string;
  /** Which organisation's peer to reach, e.g. `Org1`. */
  readonly org: string;
  /** The chaincode name, when not the connection description's. */
  readonly chaincode?: string;
  /** The channel, when not the connection description's `channel` (a shard or the governance channel). */
  readonly channel?: string;
  /** The gateway's X.509 certificate, PEM, issued by the org's CA for the HSM-held key. */
  readonly certificatePem: string;
  /** Signs proposal and transaction digests with the HSM-held key (DER, low S). */
  readonly signer: Signer;
  /** Attempts for a transaction that hit an MVCC read conflict or an unavailable peer. */
  readonly attempts?: number;
  /**
   * How long to wait, in milliseconds, for the peer's discovery to find endorsers of every org
   * the policy names (default 15 s). A fresh or restarted network answers "no combination of
   * peers can be derived" for a few seconds while gossip finds the other org's peer.
   */
  readonly endorsersWaitMs?: number;
}

const retriableCommitCodes = new Set<number>([StatusCode.MVCC_READ_CONFLICT, StatusCode.PHANTOM_READ_CONFLICT]);

/** A Fabric transport, which also follows the contract's chaincode events. */
export interface FabricTransport extends LedgerTransport {
  /**
   * The contract's events with a file checkpoint under `baseDir/<channel>/<chaincode>/` (the
   * returned `stateDir`, where a caller keeps what it derives from the events). Close the streams
   * before the transport.
   */
  openEvents(baseDir: string): Promise<{ readonly events: LedgerEvents; readonly stateDir: string }>;
  /** The channel's block height, through Fabric's system chaincode qscc. */
  height(): Promise<number>;
}

/** Connects to the org's peers through the Fabric Gateway service, with a deadline on every call. */
export function newFabricTransport(options: FabricTransportOptions): FabricTransport {
  const org = readOrganization(options.profilePath, options.org);
  const deadline = (seconds: number) => () => ({ deadline: Date.now() + seconds * 1000 });
  const chaincode = options.chaincode ?? org.chaincode;
  const channel = options.channel ?? org.channel;
  // A connection to each peer of the organisation, in the description's order. Calls go to one of
  // them; when it cannot be reached, to the next (a dead peer costs one failed attempt, not an outage).
  const connections = org.peers.map((peer) => {
    const client = new grpc.Client(peer.endpoint, grpc.credentials.createSsl(readFileSync(peer.tlsRootCert)), {
      'grpc.ssl_target_name_override': peer.hostAlias,
    });
    const gateway: Gateway = connect({
      client,
      identity: { mspId: org.mspId, credentials: Buffer.from(options.certificatePem) },
      signer: options.signer,
      hash: hash.sha256,
      evaluateOptions: deadline(5),
      endorseOptions: deadline(15),
      submitOptions: deadline(5),
      commitStatusOptions: deadline(60),
      chaincodeEventsOptions: deadline(60),
    });
    const network = gateway.getNetwork(channel);
    return { client, gateway, network, contract: network.getContract(chaincode) };
  });
  let current = 0;
  const connection = (index: number) => connections[index] ?? unreachable();
  /** The peer at `used` could not be reached: later calls go to the next one (if nobody moved on already). */
  const failOver = (used: number, err: unknown) => {
    if (peerUnreachable(err) && current === used) current = (used + 1) % connections.length;
  };
  const attempts = options.attempts ?? 3;
  const endorsersWaitMs = options.endorsersWaitMs ?? 15_000;

  /**
   * Sends an endorsed transaction to the orderers through a peer and waits for its commit. An
   * orderer that accepted it and crashed before it was replicated (a Raft leader killed) drops it
   * without a word, and a peer that dies takes its answer along: then the same transaction is sent
   * again, through the peer in use now. Its id does not change, so it commits at most once (a
   * second copy would be invalid as DUPLICATE_TXID).
   */
  const commitOnce = async (endorsed: Transaction, through: number): Promise<Status> => {
    let transaction = endorsed;
    for (let sent = 1; ; sent++) {
      try {
        const submitted = await transaction.submit();
        return await submitted.getStatus({ deadline: Date.now() + commitWaitMs });
      } catch (err) {
        failOver(through, err);
        const lost =
          peerUnreachable(err) ||
          (err instanceof CommitStatusError && err.code === (grpc.status.DEADLINE_EXCEEDED as number));
        if (!lost || sent >= commitSends) throw err;
        // A peer that refused the connection may be back in a moment: a short pause first.
        if (peerUnreachable(err)) await setTimeout(250 * sent);
        through = current;
        transaction = connection(through).gateway.newTransaction(endorsed.getBytes());
      }
    }
  };

  return {
    async openEvents(baseDir) {
      const stateDir = join(baseDir, channel, chaincode);
      const network = () => connection(current).network;
      return { events: await openFabricEvents({ network, channel, chaincode, stateDir }), stateDir };
    },

    async height() {
      try {
        const info = await connection(current)
          .network.getContract('qscc')
          .evaluate('GetChainInfo', { arguments: [channel] });
        return chainHeight(info);
      } catch (err) {
        throw toGatewayError(err);
      }
    },

    async submit(transaction, args) {
      const endorsersDeadline = Date.now() + endorsersWaitMs;
      for (let attempt = 1; ; attempt++) {
        const used = current;
        try {
          const endorsed = await connection(used)
            .contract.newProposal(transaction, { arguments: [...args] })
            .endorse();
          const status = await commitOnce(endorsed, used);
          if (!status.successful) {
            throw new CommitError({
              code: status.code,
              transactionId: status.transactionId,
              message: `transaction ${status.transactionId} failed to commit with status code ${status.code}`,
            });
          }
          return { payload: endorsed.getResult(), transactionId: endorsed.getTransactionId() };
        } catch (err) {
          failOver(used, err);
          if (attempt < attempts && isRetriable(err)) continue;
          if (attempt < attempts + endorsementRetries && endorsementsDiffer(err)) {
            await setTimeout(endorsersRetryMs); // one block time for the lagging peer to catch up
            continue;
          }
          if (endorsersUnknown(err) && Date.now() < endorsersDeadline) {
            attempt--; // waiting for discovery is not an attempt: nothing was endorsed
            await setTimeout(endorsersRetryMs);
            continue;
          }
          throw toGatewayError(err);
        }
      }
    },

    async evaluate(transaction, args) {
      // A read is safe to repeat: once on each peer at most.
      for (let tried = 1; ; tried++) {
        const used = current;
        try {
          return await connection(used).contract.evaluate(transaction, { arguments: [...args] });
        } catch (err) {
          failOver(used, err);
          if (tried < connections.length && peerUnreachable(err)) continue;
          throw toGatewayError(err);
        }
      }
    },

    close() {
      for (const { gateway, client } of connections) {
        gateway.close();
        client.close();
      }
      return Promise.resolve();
    },
  };
}

/** How long to wait for a commit before sending the same transaction again, and how often. */
const commitWaitMs = 10_000;
const commitSends = 5;

/** The peer itself did not answer (down, restarting, unreachable): another peer of the org may. */
function peerUnreachable(err: unknown): boolean {
  return err instanceof FabricGatewayError && err.code === (grpc.status.UNAVAILABLE as number);
}

function unreachable(): never {
  throw new Error('unreachable: readOrganization checks for a peer');
}

function isRetriable(err: unknown): boolean {
  // A transaction that failed validation never committed: a new one may be tried.
  if (err instanceof CommitError) return retriableCommitCodes.has(err.code);
  // Only an endorsement that never reached a peer is safe to repeat. After a submit or a commit
  // status wait fails, the transaction may have committed: the caller gets LEDGER_UNAVAILABLE
  // and reconciles, rather than a retry answered REQUEST_REPLAYED and taken for a refusal.
  return err instanceof EndorseError && err.code === (grpc.status.UNAVAILABLE as number);
}

const endorsersRetryMs = 250;

/** Extra attempts for endorsements that differed: frequent while the records are written in every block. */
const endorsementRetries = 7;

/**
 * The two organisations' peers endorsed from different ledger heights (one block behind the other
 * while the same records are written in every block), so their answers differ: nothing went to the
 * orderer, and the proposal may be endorsed again once the lagging peer has the block.
 */
function endorsementsDiffer(err: unknown): boolean {
  return (
    err instanceof EndorseError &&
    err.code === (grpc.status.ABORTED as number) &&
    err.details.some((d) => d.message.includes('ProposalResponsePayloads do not match'))
  );
}

/**
 * The gateway peer's discovery does not (yet) know a peer of every org the endorsement policy
 * needs: no proposal was sent, so trying again is safe (FABRIC-NOTES: 2–4 s on a fresh network).
 */
function endorsersUnknown(err: unknown): boolean {
  return (
    err instanceof EndorseError &&
    err.code === (grpc.status.FAILED_PRECONDITION as number) &&
    err.message.includes('no combination of peers can be derived')
  );
}

/** Fabric forwards only the chaincode's message; keyfleet's messages start with their code. */
function toGatewayError(err: unknown): GatewayError {
  if (err instanceof FabricGatewayError) {
    const messages = [err.message, ...err.details.map((d) => d.message)];
    for (const message of messages) {
      const refusal = ledgerRefusal(message, err);
      if (refusal) return refusal;
    }
    return new GatewayError(GatewayErrorCode.LedgerUnavailable, 'the ledger did not accept the call', undefined, {
      cause: err,
    });
  }
  if (err instanceof CommitError) {
    return new GatewayError(GatewayErrorCode.LedgerRejected, err.message, `COMMIT_${String(err.code)}`, { cause: err });
  }
  return new GatewayError(GatewayErrorCode.LedgerUnavailable, 'the ledger call failed', undefined, { cause: err });
}
