import { createPrivateKey } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { connect, hash, signers } from '@hyperledger/fabric-gateway';
import { GatewayError, GatewayErrorCode } from '../errors';
import { chainHeight, decodeBlock, type BlockTransaction } from './blocks';
import { readOrganization, readShardChannels } from './fabric';

/**
 * The ledger as one of an organisation's own file identities sees it (an auditor of Org2, say),
 * through that organisation's peer: the contract's reads, and the blocks themselves through
 * Fabric's system chaincode qscc. No keyfleet gateway is asked anything.
 */
export interface LedgerReader {
  readonly channel: string;
  /** A read-only transaction of `chaincode`; the answer's bytes. */
  evaluate(chaincode: string, transaction: string, ...args: string[]): Promise<Uint8Array>;
  /** The channel's block height. */
  height(): Promise<number>;
  /** The endorser transactions of block `n`. */
  block(n: number): Promise<BlockTransaction[]>;
  /**
   * The transaction with this id, from the block that holds it (qscc GetBlockByTxID); null if none.
   * On a sharded network every shard channel is searched, `channel` first.
   */
  transaction(transactionId: string): Promise<BlockTransaction | null>;
  close(): void;
}

/**
 * A reader of `channel` (default: the connection description's, shard 0), as one of an
 * organisation's file identities.
 */
export function openLedgerReader(
  profilePath: string,
  orgName: string,
  identityName: string,
  channel?: string,
): LedgerReader {
  const org = readOrganization(profilePath, orgName);
  const identity = org.identities[identityName];
  const peer = org.peers[0];
  if (!identity || !peer) {
    throw new GatewayError(
      GatewayErrorCode.ConfigInvalid,
      `no file identity ${identityName} of ${orgName} in ${profilePath} (known: ${Object.keys(org.identities).join(', ')})`,
    );
  }
  const keyFile = readdirSync(identity.privateKeyDir)[0];
  if (keyFile === undefined) {
    throw new GatewayError(GatewayErrorCode.ConfigInvalid, `no private key in ${identity.privateKeyDir}`);
  }
  const client = new grpc.Client(peer.endpoint, grpc.credentials.createSsl(readFileSync(peer.tlsRootCert)), {
    'grpc.ssl_target_name_override': peer.hostAlias,
  });
  const gateway = connect({
    client,
    identity: { mspId: org.mspId, credentials: readFileSync(identity.certificate) },
    signer: signers.newPrivateKeySigner(createPrivateKey(readFileSync(join(identity.privateKeyDir, keyFile)))),
    hash: hash.sha256,
    evaluateOptions: () => ({ deadline: Date.now() + 10_000 }),
  });
  const onChannel = channel ?? org.channel;
  const network = gateway.getNetwork(onChannel);
  const qscc = network.getContract('qscc');
  const shards = readShardChannels(profilePath)?.shards ?? [];
  const searched = [onChannel, ...shards.filter((c) => c !== onChannel)];
  return {
    channel: onChannel,
    evaluate: (chaincode, transaction, ...args) =>
      network.getContract(chaincode).evaluateTransaction(transaction, ...args),
    height: async () => chainHeight(await qscc.evaluateTransaction('GetChainInfo', onChannel)),
    block: async (n) => decodeBlock(await qscc.evaluateTransaction('GetBlockByNumber', onChannel, String(n))),
    async transaction(transactionId) {
      for (const searching of searched) {
        let bytes: Uint8Array;
        try {
          const onIt = gateway.getNetwork(searching).getContract('qscc');
          bytes = await onIt.evaluateTransaction('GetBlockByTxID', searching, transactionId);
        } catch {
          continue;
        }
        const found = decodeBlock(bytes).find((t) => t.transactionId === transactionId);
        if (found !== undefined) return found;
      }
      return null;
    },
    close() {
      gateway.close();
      client.close();
    },
  };
}
