/**
 * The device's keystore: one JSON file, mode 0600, replaced atomically (write a temporary file
 * in the same directory, fsync, rename, fsync the directory), so a crash leaves the old or the new
 * contents, never half of either. It holds only the device's own keys.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';

import { AgentError, AgentErrorCode } from './errors.js';

export const KeystoreFormat = 'keyfleet-agent-keystore/v1';

/** One data key: only the version the device currently holds (older ones are destroyed). */
export interface StoredKey {
  readonly version: number;
  /** The AES-256 key, base64url. */
  readonly key: string;
  readonly kcv: string;
  readonly transactionId: string;
  readonly receivedAt: string;
  /** The acknowledgement JWS still to be delivered, or null once the gateway recorded it. */
  readonly pendingAck: string | null;
}

export interface KeystoreData {
  readonly format: typeof KeystoreFormat;
  readonly deviceId: string;
  readonly gatewayUrl: string;
  /** The device's P-256 private key, PKCS#8 PEM. */
  readonly privateKey: string;
  /** The PKCS#10 request made for it, kept so an interrupted enrolment is retried with the same key. */
  readonly csr: string;
  /** Null until enrolment completes. */
  readonly certificate: string | null;
  readonly caCertificate: string | null;
  /** SPKI PEM of the gateway's `device-kex` key (device master key derivation). */
  readonly keyExchangePublicKey: string | null;
  /** SPKI PEM of the pinned metadata-signing key that signs rotation responses. */
  readonly metadataSigningPublicKey: string | null;
  readonly keys: Readonly<Record<string, StoredKey>>;
}

/** Where the keystore lives; a file by default, anything else (a secure element) later. */
export interface Keystore {
  /** The contents, or null when there is no keystore yet. */
  load(): Promise<KeystoreData | null>;
  save(data: KeystoreData): Promise<void>;
}

export function newFileKeystore(path: string): Keystore {
  return {
    async load() {
      let mode: number;
      try {
        mode = (await stat(path)).mode;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw new AgentError(AgentErrorCode.KeystoreInvalid, `cannot read ${path}`, undefined, { cause: err });
      }
      if ((mode & 0o077) !== 0) {
        throw new AgentError(
          AgentErrorCode.KeystoreInsecure,
          `${path} is readable by others (mode ${(mode & 0o777).toString(8)}); it must be 0600`,
        );
      }
      let data: unknown;
      try {
        data = JSON.parse(await readFile(path, 'utf8'));
      } catch (err) {
        throw new AgentError(AgentErrorCode.KeystoreInvalid, `${path} is not a keystore`, undefined, { cause: err });
      }
      if (typeof data !== 'object' || data === null || (data as { format?: unknown }).format !== KeystoreFormat) {
        throw new AgentError(AgentErrorCode.KeystoreInvalid, `${path} is not a ${KeystoreFormat} keystore`);
      }
      return data as KeystoreData;
    },

    async save(data) {
      const directory = dirname(path);
      await mkdir(directory, { recursive: true, mode: 0o700 });
      const temporary = join(directory, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
      const file = await open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      try {
        await file.writeFile(`${JSON.stringify(data, null, 2)}\n`, 'utf8');
        await file.sync();
      } catch (err) {
        await file.close();
        await unlink(temporary).catch(() => undefined);
        throw err;
      }
      await file.close();
      await rename(temporary, path);
      const dir = await open(directory, constants.O_RDONLY);
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    },
  };
}
