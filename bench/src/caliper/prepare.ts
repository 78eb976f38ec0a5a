#!/usr/bin/env node
/**
 * Set-up of `npm run caliper` (scripts/caliper.sh), on the network it has just started:
 *
 *   node bench/dist/caliper/prepare.js --network-dir DIR --out DIR --contract NAME
 *
 * writes OUT/network-NAME.json, Caliper's network configuration for chaincode NAME (made from
 * DIR/connection.json), waits until the chaincode is endorsable, and for `keyfleet` also registers the workload's two trust anchors (the
 * metadata-signing bootstrap as Org1's operator, the verifier's anchor as Org2's verifier, each
 * with proof of possession) and writes their private keys to OUT/anchors.json (mode 600), which the
 * workload modules sign with.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openFileKeyClient } from '../network';
import { caliperNetworkConfig } from './network-config';
import { newAnchorKey, registerTrustAnchor, RequestSigner, type AnchorKeys } from './requests';

const { values } = parseArgs({
  options: { 'network-dir': { type: 'string' }, out: { type: 'string' }, contract: { type: 'string' } },
});
const networkDir = values['network-dir'];
const out = values.out;
const contract = values.contract;
if (networkDir === undefined || out === undefined || (contract !== 'keyfleet' && contract !== 'baseline')) {
  console.error('usage: prepare.js --network-dir DIR --out DIR --contract keyfleet|baseline');
  process.exit(2);
}
const connection = join(networkDir, 'connection.json');

/** Registers one anchor as `identity` of `org`, retrying while cross-org discovery catches up. */
async function register(org: string, identity: string, kind: 'metadata-signing' | 'verifier', anchorId: string) {
  const { anchor, publicJwk } = await newAnchorKey(anchorId);
  const signed = await (
    await RequestSigner.from(anchor)
  ).sign(registerTrustAnchor(`caliper-anchor-${anchorId}`, anchorId, kind, publicJwk));
  await submitOnceEndorsable(org, identity, 'keyfleet', 'RegisterTrustAnchor', [signed.requestJson, signed.jws]);
  return anchor;
}

/**
 * Submits one transaction, retrying for up to a minute: a fresh chaincode commit is not endorsable
 * across organisations for a few seconds (FABRIC-NOTES), and Caliper's rounds must not start then.
 */
async function submitOnceEndorsable(org: string, identity: string, name: string, fn: string, args: string[]) {
  const client = openFileKeyClient(connection, org, identity);
  try {
    for (const deadline = Date.now() + 60_000; ;) {
      try {
        await client.contract(name).submitTransaction(fn, ...args);
        return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  } finally {
    client.close();
  }
}

async function main(contractName: 'keyfleet' | 'baseline', outDir: string): Promise<void> {
  const config = join(outDir, `network-${contractName}.json`);
  writeFileSync(config, `${JSON.stringify(caliperNetworkConfig(connection, [contractName]), null, 2)}\n`);
  console.log(`caliper: network configuration ${config}`);
  if (contractName === 'baseline') {
    await submitOnceEndorsable('Org1', 'application', 'baseline', 'Put', ['caliper-ready', 'ready']);
    console.log('caliper: chaincode baseline endorsable');
    return;
  }
  const anchors: AnchorKeys = {
    metadata: await register('Org1', 'operator', 'metadata-signing', 'caliper-metadata-1'),
    verifier: await register('Org2', 'verifier', 'verifier', 'caliper-verifier-1'),
  };
  writeFileSync(join(outDir, 'anchors.json'), `${JSON.stringify(anchors)}\n`, { mode: 0o600 });
  console.log('caliper: trust anchors caliper-metadata-1 and caliper-verifier-1 registered');
}

main(contract, out).catch((err: unknown) => {
  console.error(`caliper: set-up failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
