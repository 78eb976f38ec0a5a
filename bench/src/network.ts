import { execFile } from 'node:child_process';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { peer } from '@hyperledger/fabric-protos';
import { connect, hash, signers, type Contract, type Gateway, type Network } from '@hyperledger/fabric-gateway';
import { chainHeight, decodeBlock, readOrganization } from '@keyfleet/gateway';
import { repoRoot } from './service-process';

/** The benchmark's Fabric network: network/network.sh's directory and what it wrote there. */
export interface BenchNetwork {
  readonly dir: string;
  readonly connectionProfile: string;
  /** `network.sh deploy [PATH] --name NAME` on this network. */
  deploy(name: string, path?: string): Promise<void>;
  /** Each process of the network by its pid file name (`peer0.org1`, `cc.org2`, …). */
  processes(): Map<string, number>;
}

export function openBenchNetwork(dir: string): BenchNetwork {
  const connectionProfile = join(dir, 'connection.json');
  return {
    dir,
    connectionProfile,
    async deploy(name, path) {
      await promisify(execFile)(
        'bash',
        [join(repoRoot, 'network', 'network.sh'), 'deploy', ...(path === undefined ? [] : [path]), '--name', name],
        { env: { ...process.env, KEYFLEET_NETWORK_DIR: dir }, maxBuffer: 1 << 22 },
      );
    },
    processes() {
      const out = new Map<string, number>();
      const pids = join(dir, 'pids');
      for (const file of readdirSync(pids)
        .filter((f) => f.endsWith('.pid'))
        .sort()) {
        out.set(file.slice(0, -'.pid'.length), Number(readFileSync(join(pids, file), 'utf8').trim()));
      }
      return out;
    },
  };
}

/** A file identity of the connection description's `identities` (a CA-enrolled role of the org). */
interface FileIdentity {
  readonly certificate: string;
  readonly privateKeyDir: string;
}

/**
 * A fabric-gateway client of `org`'s first peer as one of the org's file identities (a key in a
 * PEM file, not the HSM): the baseline's client, and the ledger reader that counts transactions.
 */
export interface FileKeyClient {
  readonly network: Network;
  contract(name: string): Contract;
  /** The channel's block height. */
  height(): Promise<number>;
  /** Transactions of chaincode `name` in blocks [from, to): how many, by validation code and by function. */
  transactionsOf(
    name: string,
    from: number,
    to: number,
  ): Promise<{ total: number; byCode: Map<number, number>; byMethod: Map<string, number> }>;
  close(): void;
}

export function openFileKeyClient(
  connectionProfile: string,
  org: string,
  identityName: string,
  channel?: string,
): FileKeyClient {
  const profile = readOrganization(connectionProfile, org);
  const raw = JSON.parse(readFileSync(connectionProfile, 'utf8')) as {
    organizations: Record<string, { identities?: Record<string, FileIdentity> }>;
  };
  const identity = raw.organizations[org]?.identities?.[identityName];
  if (identity === undefined) throw new Error(`no identity ${identityName} of ${org} in ${connectionProfile}`);
  const at = (path: string) => resolve(dirname(connectionProfile), path);
  const keyDir = at(identity.privateKeyDir);
  const keyFile = readdirSync(keyDir)[0];
  if (keyFile === undefined) throw new Error(`no private key in ${keyDir}`);
  const endpoint = profile.peers[0];
  if (endpoint === undefined) throw new Error(`no peer of ${org}`);
  const client = new grpc.Client(endpoint.endpoint, grpc.credentials.createSsl(readFileSync(endpoint.tlsRootCert)), {
    'grpc.ssl_target_name_override': endpoint.hostAlias,
  });
  const deadline = (seconds: number) => () => ({ deadline: Date.now() + seconds * 1000 });
  // The same deadlines as the gateway's own Fabric transport (gateway/src/ledger/fabric.ts).
  const gateway: Gateway = connect({
    client,
    identity: { mspId: profile.mspId, credentials: readFileSync(at(identity.certificate)) },
    signer: signers.newPrivateKeySigner(createPrivateKey(readFileSync(join(keyDir, keyFile)))),
    hash: hash.sha256,
    evaluateOptions: deadline(5),
    endorseOptions: deadline(15),
    submitOptions: deadline(5),
    commitStatusOptions: deadline(60),
  });
  // Shard 0 (`keyfleet`) unless another channel of the network is named.
  const channelName = channel ?? profile.channel;
  const network = gateway.getNetwork(channelName);
  const qscc = network.getContract('qscc');
  const blocks = new Map<number, ReturnType<typeof decodeBlock>>();
  return {
    network,
    contract: (name) => network.getContract(name),
    height: async () => chainHeight(await qscc.evaluateTransaction('GetChainInfo', channelName)),
    async transactionsOf(name, from, to) {
      const byCode = new Map<number, number>();
      const byMethod = new Map<string, number>();
      let total = 0;
      for (let n = from; n < to; n++) {
        let txs = blocks.get(n);
        if (txs === undefined) {
          txs = decodeBlock(await qscc.evaluateTransaction('GetBlockByNumber', channelName, String(n)));
          blocks.set(n, txs);
        }
        for (const tx of txs) {
          if (tx.chaincode !== name) continue;
          total++;
          byCode.set(tx.validationCode, (byCode.get(tx.validationCode) ?? 0) + 1);
          byMethod.set(tx.method, (byMethod.get(tx.method) ?? 0) + 1);
        }
      }
      return { total, byCode, byMethod };
    },
    close() {
      gateway.close();
      client.close();
    },
  };
}

class CodedError extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

const validationNames = new Map(Object.entries(peer.TxValidationCode).map(([name, code]) => [code, name]));

/** Fabric's name of a transaction validation code (`VALID`, `MVCC_READ_CONFLICT`, …). */
export function validationCodeName(code: number): string {
  return validationNames.get(code) ?? `CODE_${String(code)}`;
}

/**
 * The baseline operation: `Put(key, value)` of the baseline chaincode, a blind write of a fresh
 * key, submitted and waited for until committed, exactly as keyfleet's Fabric transport does
 * (`submitAsync`, then `getStatus`).
 */
export function newBaselineWrite(contract: Contract): () => Promise<void> {
  let next = 0;
  const prefix = randomBytes(4).toString('hex');
  return async () => {
    const key = `bench-${prefix}-${String(next++)}`;
    let status;
    try {
      const submitted = await contract.submitAsync('Put', { arguments: [key, randomBytes(32).toString('hex')] });
      status = await submitted.getStatus();
    } catch (err) {
      // The load generator counts failures by a string `code`; fabric-gateway's are gRPC numbers.
      throw new CodedError(`${err instanceof Error ? err.name : 'Error'}_${String((err as { code?: unknown }).code)}`);
    }
    if (!status.successful) throw new CodedError(validationCodeName(status.code));
  };
}
