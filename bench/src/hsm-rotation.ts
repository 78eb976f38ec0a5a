/**
 * The gateway's HSM work per rotation with N keys on the token, without Fabric or HTTP: the
 * steps `rotation/service.ts` runs for one rotation (find the pre-generated next version by the
 * ledger's commitment, generate the version after it, derive the device master key and the KEK
 * as session objects, wrap, destroy them, sign the response), on a fresh SoftHSM token filled by
 * `fill-token.js` (AES-256 token keys, as in `npm run bench`'s keys-on-the-token rows):
 *
 *   node bench/dist/hsm-rotation.js [--keys 100,1000,10000] [--rotations 64] [--concurrency 16]
 *
 * Prints one JSON line per N: main-thread CPU ms per rotation (user + system of this process),
 * wall ms per rotation, and rotations per second.
 */
import { execFileSync } from 'node:child_process';
import { createECDH, createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  findVersionKey,
  generateVersionKey,
  newHsm,
  nextKeyCommitment,
  withDeviceMasterKey,
  wrapForDevice,
  type Hsm,
  type VersionKey,
} from '@keyfleet/gateway';
import { createSoftHsmStore, softHsmModule } from '@keyfleet/gateway/testing';

interface Device {
  readonly deviceId: string;
  readonly keyId: string;
  readonly point: Buffer;
  next: VersionKey;
  following: VersionKey;
}

async function rotateOnce(hsm: Hsm, device: Device): Promise<void> {
  const version = device.next.version;
  const commitment = nextKeyCommitment(device.next.kcv);
  const delivered = await findVersionKey(hsm, device.keyId, version, hsm.tokenLabel, { commitment });
  if (delivered === null) throw new Error(`version ${version} of ${device.keyId} not found`);
  const following = await generateVersionKey(hsm, device.keyId, version + 2);
  await withDeviceMasterKey(hsm, 'device-kex', device.point, (dmk) =>
    wrapForDevice(hsm, dmk, { deviceId: device.deviceId, keyId: device.keyId, version }, { id: delivered.id }),
  );
  await hsm.signDigest(
    { label: 'rotation-response' },
    createHash('sha256').update(delivered.kcv).digest(),
    'ieee-p1363',
  );
  device.next = device.following;
  device.following = following;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      keys: { type: 'string', default: '100,1000' },
      rotations: { type: 'string', default: '64' },
      concurrency: { type: 'string', default: '16' },
    },
  });
  const rotations = Number(values.rotations);
  const concurrency = Number(values.concurrency);
  const store = createSoftHsmStore('keyfleet-bench-rot');
  const pinFile = join(store.dir, 'user-pin');
  writeFileSync(pinFile, store.pin, { mode: 0o600 });
  const hsm = await newHsm({ uri: store.uri, modulePath: softHsmModule, pin: store.pin });
  try {
    await hsm.generateEcKeyPair({ label: 'device-kex', sign: false, derive: true });
    await hsm.generateEcKeyPair({ label: 'rotation-response' });
    const devices: Device[] = [];
    for (let i = 0; i < concurrency; i++) {
      const ecdh = createECDH('prime256v1');
      ecdh.generateKeys();
      const keyId = `rot-${i}`;
      devices.push({
        deviceId: `dev-${i}`,
        keyId,
        point: ecdh.getPublicKey(),
        next: await generateVersionKey(hsm, keyId, 2),
        following: await generateVersionKey(hsm, keyId, 3),
      });
    }
    for (const target of values.keys.split(',').map(Number)) {
      const fill = execFileSync(
        process.execPath,
        [join(__dirname, 'fill-token.js'), store.label, pinFile, 'fill', String(target)],
        {
          env: { ...process.env, SOFTHSM2_CONF: store.conf },
          encoding: 'utf8',
        },
      );
      const keysAtStart = (JSON.parse(fill) as { keys: number }).keys;
      // One warm-up rotation per device, then the timed ones, `concurrency` in flight (one per device).
      await Promise.all(devices.map((d) => rotateOnce(hsm, d)));
      const cpu = process.cpuUsage();
      const started = process.hrtime.bigint();
      const perDevice = Math.ceil(rotations / devices.length);
      await Promise.all(
        devices.map(async (d) => {
          for (let r = 0; r < perDevice; r++) await rotateOnce(hsm, d);
        }),
      );
      const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
      const used = process.cpuUsage(cpu);
      const done = perDevice * devices.length;
      process.stdout.write(
        `${JSON.stringify({
          keysAtStart,
          rotations: done,
          cpuMsPerRotation: Number(((used.user + used.system) / 1000 / done).toFixed(2)),
          wallMsPerRotation: Number((wallMs / done).toFixed(2)),
          rotationsPerSecond: Number(((done * 1000) / wallMs).toFixed(1)),
        })}\n`,
      );
    }
  } finally {
    await hsm.close();
    store.remove();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`hsm-rotation: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
