/**
 * One HSM signing row, in a process of its own (each signer initialises PKCS#11 its own way, and
 * fabric-gateway's HSMSigner must not share a process with another initialisation):
 *
 *   node bench/dist/sign-row.js pooled|hsm-signer|raw-session COUNT RUNS
 *
 * Prints one JSON line: `{ "kind", "runs": [signs/s…], "median" }`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signers } from '@hyperledger/fabric-gateway';
import { newFleet, median } from '@keyfleet/agent/fleet';
import { newHsm } from '@keyfleet/gateway';
import { createSoftHsmStore, softHsmModule } from '@keyfleet/gateway/testing';
import * as pkcs11js from 'pkcs11js';

type Sign = (digest: Uint8Array) => Promise<unknown>;

async function main(kind: string, count: number, runs: number): Promise<void> {
  const store = createSoftHsmStore('keyfleet-bench-sign');
  const workDir = mkdtempSync(join(tmpdir(), 'keyfleet-bench-sign-'));
  try {
    // The key is made the gateway's way (CKA_ID = SHA-256 of the point, Fabric's convention).
    const setup = await newHsm({ uri: store.uri, modulePath: softHsmModule, pin: store.pin });
    const key = await setup.generateEcKeyPair({ label: 'bench-sign' });
    let sign: Sign;
    let concurrency: number;
    let close: () => Promise<void> | void;
    if (kind === 'pooled') {
      // The gateway's signer: a pool of sessions (default size), any number of signs in flight.
      sign = setup.newSigner({ label: 'bench-sign' });
      concurrency = 64;
      close = () => setup.close();
    } else {
      await setup.close();
      if (kind === 'hsm-signer') {
        // fabric-gateway 1.11's own HSM signer, used serially as its documentation requires.
        const factory = signers.newHSMSignerFactory(softHsmModule);
        const hsmSigner = factory.newSigner({ label: store.label, pin: store.pin, identifier: Buffer.from(key.id) });
        sign = hsmSigner.signer;
        concurrency = 1;
        close = () => {
          hsmSigner.close();
          factory.dispose();
        };
      } else if (kind === 'raw-session') {
        // One session, synchronous C_SignInit/C_Sign: the floor of what PKCS#11 costs per signature.
        const p11 = new pkcs11js.PKCS11();
        p11.load(softHsmModule);
        p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
        const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === store.label);
        if (slot === undefined) throw new Error('token not found');
        const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
        p11.C_Login(session, pkcs11js.CKU_USER, store.pin);
        p11.C_FindObjectsInit(session, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
          { type: pkcs11js.CKA_ID, value: Buffer.from(key.id) },
        ]);
        const [handle] = p11.C_FindObjects(session, 1);
        p11.C_FindObjectsFinal(session);
        if (handle === undefined) throw new Error('key not found');
        const out = Buffer.alloc(64);
        sign = (digest) => {
          p11.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, handle);
          return Promise.resolve(p11.C_Sign(session, Buffer.from(digest), out));
        };
        concurrency = 1;
        close = () => {
          p11.C_Logout(session);
          p11.C_CloseSession(session);
          p11.C_Finalize();
        };
      } else {
        throw new Error(`unknown signer ${kind}`);
      }
    }
    // The same load generator as every other row: the fleet's runner, here with a signature per operation.
    const fleet = newFleet({
      gatewayUrl: 'http://127.0.0.1:9',
      size: Math.max(concurrency, 1),
      workDir,
      operatorAuthorization: () => Promise.reject(new Error('unused')),
    });
    const digests = Array.from({ length: 256 }, () => createHash('sha256').update(randomBytes(32)).digest());
    const op = async (i: number) => {
      await sign(digests[i % digests.length] as Buffer);
    };
    await fleet.run('warm-up', op, { count: Math.min(2000, count), concurrency, progress: false });
    const rates: number[] = [];
    for (let r = 0; r < runs; r++) {
      const stats = await fleet.run(kind, op, { count, concurrency, progress: false });
      if (stats.failed > 0) throw new Error(`${kind}: ${stats.failed} signs failed: ${JSON.stringify(stats.failures)}`);
      rates.push(stats.perSecond);
    }
    await close();
    process.stdout.write(`${JSON.stringify({ kind, concurrency, runs: rates, median: median(rates) })}\n`);
  } finally {
    store.remove();
    rmSync(workDir, { recursive: true, force: true });
  }
}

const [kind = '', count = '20000', runs = '3'] = process.argv.slice(2);
main(kind, Number(count), Number(runs)).catch((err: unknown) => {
  process.stderr.write(`sign-row ${kind}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
