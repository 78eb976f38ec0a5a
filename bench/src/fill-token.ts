/**
 * Puts keys on the gateway's running token for the "keys on the token" rows, or takes them off,
 * in a process of its own (SoftHSM's file store is shared between processes: the gateway sees
 * objects another process adds):
 *
 *   node bench/dist/fill-token.js TOKEN-LABEL PIN-FILE fill N           AES-256 fillers up to N keys
 *   node bench/dist/fill-token.js TOKEN-LABEL PIN-FILE remove PREFIX…   destroys keys whose label starts so
 *
 * with SOFTHSM2_CONF set to the token's configuration. Prints one JSON line
 * `{ "keys": <key objects on the token now>, "changed": n, "seconds": s }`.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { softHsmModule } from '@keyfleet/gateway/testing';
import * as pkcs11js from 'pkcs11js';

const KeyClasses = [pkcs11js.CKO_SECRET_KEY, pkcs11js.CKO_PRIVATE_KEY, pkcs11js.CKO_PUBLIC_KEY];

function main(label: string, pinFile: string, verb: string, args: readonly string[]): void {
  const started = Date.now();
  const p11 = new pkcs11js.PKCS11();
  p11.load(softHsmModule);
  p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  try {
    const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === label);
    if (slot === undefined) throw new Error(`token ${label} not found`);
    const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    p11.C_Login(session, pkcs11js.CKU_USER, readFileSync(pinFile, 'utf8').trim());
    const find = (template: pkcs11js.Template): Buffer[] => {
      p11.C_FindObjectsInit(session, template);
      const found: Buffer[] = [];
      for (let batch = p11.C_FindObjects(session, 1000); batch.length > 0; batch = p11.C_FindObjects(session, 1000)) {
        found.push(...batch);
      }
      p11.C_FindObjectsFinal(session);
      return found;
    };
    const keyCount = () =>
      KeyClasses.reduce((n, cls) => n + find([{ type: pkcs11js.CKA_CLASS, value: cls }]).length, 0);
    let changed = 0;
    if (verb === 'fill') {
      const target = Number(args[0]);
      if (!Number.isInteger(target) || target < 0) throw new Error('fill needs a whole number of keys');
      const missing = target - keyCount();
      for (let i = 0; i < missing; i++) {
        // Like a version key: a token AES-256 key, sensitive, never extractable.
        p11.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
          { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
          { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_PRIVATE, value: true },
          { type: pkcs11js.CKA_SENSITIVE, value: true },
          { type: pkcs11js.CKA_EXTRACTABLE, value: false },
          { type: pkcs11js.CKA_ENCRYPT, value: true },
          { type: pkcs11js.CKA_DECRYPT, value: true },
          { type: pkcs11js.CKA_LABEL, value: `bench-filler-${randomBytes(8).toString('hex')}` },
          { type: pkcs11js.CKA_ID, value: randomBytes(16) },
        ]);
        changed++;
      }
    } else if (verb === 'remove') {
      if (args.length === 0) throw new Error('remove needs at least one label prefix');
      for (const handle of find([{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }])) {
        const [attribute] = p11.C_GetAttributeValue(session, handle, [{ type: pkcs11js.CKA_LABEL }]);
        const text = attribute?.value instanceof Buffer ? attribute.value.toString('utf8') : '';
        if (args.some((prefix) => text.startsWith(prefix))) {
          p11.C_DestroyObject(session, handle);
          changed++;
        }
      }
    } else {
      throw new Error(`unknown verb ${verb}`);
    }
    const keys = keyCount();
    p11.C_Logout(session);
    p11.C_CloseSession(session);
    process.stdout.write(`${JSON.stringify({ keys, changed, seconds: (Date.now() - started) / 1000 })}\n`);
  } finally {
    p11.C_Finalize();
  }
}

const [label = '', pinFile = '', verb = '', ...args] = process.argv.slice(2);
try {
  main(label, pinFile, verb, args);
} catch (err) {
  process.stderr.write(`fill-token: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
}
