/**
 * The client side of multi-host.test.ts, run inside the client host's network namespace (the test
 * process itself cannot reach the hosts' private addresses):
 *
 *   node test/dist/support/cross-host-client.js CONNECTION_JSON CHANNEL CHAINCODE ANCHOR_ID
 *
 * writes a metadata-signing trust anchor into chaincode CHAINCODE (keyfleet's, under that name) on CHANNEL as Org1's operator through Org1's peer, then
 * reads it back as Org2's auditor through Org2's peer (another host), and prints
 * `{"written": …, "readByOrg2": …, "org1Peer": "…", "org2Peer": "…"}`.
 */
import { createPrivateKey } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { connect, hash, signers, type Contract } from '@hyperledger/fabric-gateway';
import type { TrustAnchorRecord } from '@keyfleet/protocol';
import { asPrincipal, newLedgerClient, readOrganization, type LedgerTransport } from '@keyfleet/gateway';
import { newSoftwareKey } from '@keyfleet/gateway/testing';

/** CHAINCODE on CHANNEL as a file identity of ORG, through the org's first peer. */
function contractAs(connection: string, orgName: string, identityName: string, channel: string, chaincode: string) {
  const org = readOrganization(connection, orgName);
  const peer = org.peers[0];
  const identity = org.identities[identityName];
  if (peer === undefined || identity === undefined) throw new Error(`no peer or no ${identityName} in ${orgName}`);
  const keyFile = readdirSync(identity.privateKeyDir)[0] ?? '';
  const client = new grpc.Client(peer.endpoint, grpc.credentials.createSsl(readFileSync(peer.tlsRootCert)), {
    'grpc.ssl_target_name_override': peer.hostAlias,
  });
  const deadline = () => ({ deadline: Date.now() + 30_000 });
  const gateway = connect({
    client,
    identity: { mspId: org.mspId, credentials: readFileSync(identity.certificate) },
    signer: signers.newPrivateKeySigner(createPrivateKey(readFileSync(join(identity.privateKeyDir, keyFile)))),
    hash: hash.sha256,
    evaluateOptions: deadline,
    endorseOptions: deadline,
    submitOptions: deadline,
    commitStatusOptions: deadline,
  });
  return {
    endpoint: peer.endpoint,
    contract: gateway.getNetwork(channel).getContract(chaincode),
    close() {
      gateway.close();
      client.close();
    },
  };
}

function transportOf(contract: Contract): LedgerTransport {
  return {
    async submit(transaction, args) {
      const endorsed = await contract.newProposal(transaction, { arguments: [...args] }).endorse();
      const status = await (await endorsed.submit()).getStatus();
      if (!status.successful) throw new Error(`${transaction}: validation code ${String(status.code)}`);
      return { payload: endorsed.getResult(), transactionId: endorsed.getTransactionId() };
    },
    evaluate: (transaction, args) => contract.evaluateTransaction(transaction, ...args),
    close: () => Promise.resolve(),
  };
}

async function main(connection: string, channel: string, chaincode: string, anchorId: string): Promise<void> {
  const operator = contractAs(connection, 'Org1', 'operator', channel, chaincode);
  const auditor = contractAs(connection, 'Org2', 'auditor', channel, chaincode);
  try {
    const key = newSoftwareKey(anchorId);
    const { x, y } = key.publicKey.export({ format: 'jwk' });
    const ledger = newLedgerClient({ transport: transportOf(operator.contract), signingKey: key, anchorId });
    const { record } = await asPrincipal({ Kind: 'operator', ID: 'alice' }, () =>
      ledger.write<TrustAnchorRecord>('RegisterTrustAnchor', {
        AnchorID: anchorId,
        Kind: 'metadata-signing',
        PublicKey: { kty: 'EC', crv: 'P-256', x, y },
        Description: `written across hosts on ${channel}`,
      }),
    );
    const read = JSON.parse(
      Buffer.from(await auditor.contract.evaluateTransaction('GetTrustAnchor', anchorId)).toString('utf8'),
    ) as unknown;
    process.stdout.write(
      `${JSON.stringify({ written: record, readByOrg2: read, org1Peer: operator.endpoint, org2Peer: auditor.endpoint })}\n`,
    );
  } finally {
    operator.close();
    auditor.close();
  }
}

const [connection, channel, chaincode, anchorId] = process.argv.slice(2);
if (connection === undefined || channel === undefined || chaincode === undefined || anchorId === undefined) {
  process.stderr.write('usage: cross-host-client.js CONNECTION_JSON CHANNEL CHAINCODE ANCHOR_ID\n');
  process.exit(2);
}
main(connection, channel, chaincode, anchorId).catch((err: unknown) => {
  process.stderr.write(`cross-host-client: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
