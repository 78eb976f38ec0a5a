/** The thread of {@link FindWorker}: C_FindObjectsInit, C_FindObjects, C_FindObjectsFinal. */
import { parentPort, workerData } from 'node:worker_threads';
import type * as Pkcs11js from 'pkcs11js';
import type { FindReply, FindRequest } from './find-worker.js';

// eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded the same way as on the main thread (pkcs11-module.ts)
const js = require('pkcs11js') as typeof Pkcs11js;
const lib = new js.PKCS11();
lib.load((workerData as { modulePath: string }).modulePath);
try {
  lib.C_Initialize({ flags: js.CKF_OS_LOCKING_OK });
} catch (err) {
  // The main thread initialised the library for the process; anything else is a real failure.
  if (!(err instanceof Error && err.message === 'CKR_CRYPTOKI_ALREADY_INITIALIZED')) throw err;
}

function search({ session, template, max }: FindRequest): Uint8Array[] {
  const handle = Buffer.from(session);
  // Structured cloning turned Buffers into Uint8Arrays; pkcs11js wants Buffers.
  const values: Pkcs11js.Template = template.map((attr) =>
    attr.value instanceof Uint8Array ? { type: attr.type, value: Buffer.from(attr.value) } : attr,
  );
  lib.C_FindObjectsInit(handle, values);
  try {
    const found: Uint8Array[] = [];
    for (;;) {
      const batch = lib.C_FindObjects(handle, Math.min(64, max - found.length));
      found.push(...batch.map((h) => new Uint8Array(h)));
      if (batch.length === 0 || found.length >= max) return found;
    }
  } finally {
    lib.C_FindObjectsFinal(handle);
  }
}

parentPort?.on('message', (request: FindRequest) => {
  let reply: FindReply;
  try {
    reply = { id: request.id, handles: search(request) };
  } catch (err) {
    // pkcs11js errors carry the CKR name as their message, which the main thread maps.
    reply = { id: request.id, error: err instanceof Error ? err.message : String(err) };
  }
  parentPort?.postMessage(reply);
});
