/**
 * What the HSM cluster costs (docs/hsm-cluster.md), on SoftHSM, without Fabric or HTTP:
 *
 *   node bench/dist/hsm-cluster.js [--keys 200]
 *
 * - creating an AES-256 token key on one token, and through a cluster of two (made on the primary,
 *   then wrapped under the cluster KEK, unwrapped in the second token and both check values
 *   compared before the call returns): wall ms per key and the ratio;
 * - joining a third token to the running cluster: wall ms per key copied.
 *
 * Prints one JSON line per measurement.
 */
import { parseArgs } from 'node:util';
import { openHsmCluster, openPkcs11Hsm, provisionClusterKek, type Hsm } from '@keyfleet/gateway';
import { createSoftHsmStore, softHsmModule } from '@keyfleet/gateway/testing';

const msSince = (started: bigint): number => Number(process.hrtime.bigint() - started) / 1e6;
const round = (n: number): number => Number(n.toFixed(3));

/** Wall ms per key for `keys` AES-256 token keys made one after another. */
async function createKeys(hsm: Hsm, prefix: string, keys: number): Promise<number> {
  const started = process.hrtime.bigint();
  for (let i = 0; i < keys; i++) {
    await hsm.generateSecretKey({ label: `${prefix}-${String(i)}`, type: 'aes-256', usage: ['encrypt', 'decrypt'] });
  }
  return msSince(started) / keys;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      keys: { type: 'string', default: '200' },
    },
  });
  const n = Number(values.keys);
  if (!Number.isInteger(n) || n < 1) throw new Error('--keys takes a whole number from 1');
  const store = createSoftHsmStore('bench-alone');
  const members = ['bench-c1', 'bench-c2', 'bench-c3'];
  for (const label of members) store.addToken(label);
  const open = (label: string) =>
    openPkcs11Hsm({ uri: `pkcs11:token=${label}`, modulePath: softHsmModule, pin: store.pin, sessions: 4 });
  try {
    // The SO's ceremony first: no user of this process may be logged in to these tokens yet.
    provisionClusterKek(softHsmModule, members, store.soPin);
    const alone = await open('bench-alone');
    const cluster = await openHsmCluster({
      name: 'bench-c1',
      members: [
        { name: 'bench-c1', hsm: await open('bench-c1') },
        { name: 'bench-c2', hsm: await open('bench-c2') },
      ],
    });
    try {
      // Warm-up: sessions open, logins done.
      await createKeys(alone, 'warm', 5);
      await createKeys(cluster, 'warm', 5);
      const aloneMs = await createKeys(alone, 'key', n);
      const clusterMs = await createKeys(cluster, 'key', n);
      process.stdout.write(
        `${JSON.stringify({
          measure: 'create AES-256 token key',
          keys: n,
          oneTokenMsPerKey: round(aloneMs),
          clusterOfTwoMsPerKey: round(clusterMs),
          ratio: round(clusterMs / aloneMs),
        })}\n`,
      );
      const started = process.hrtime.bigint();
      const joined = await cluster.join({ name: 'bench-c3', hsm: await open('bench-c3') });
      const joinMs = msSince(started);
      process.stdout.write(
        `${JSON.stringify({
          measure: 'join a token to the running cluster',
          keysCopied: joined.copied.length,
          joinMs: Math.round(joinMs),
          msPerKeyCopied: round(joinMs / joined.copied.length),
          ratioToCreatingOnOneToken: round(joinMs / joined.copied.length / aloneMs),
        })}\n`,
      );
    } finally {
      await cluster.close();
      await alone.close();
    }
  } finally {
    store.remove();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`hsm-cluster: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
