import { readFile, rename, writeFile } from 'node:fs/promises';
import { GatewayError, GatewayErrorCode } from '../errors';
import type { DeniedStatus, DenialStore } from './device-denials';

interface DenialFile {
  readonly version: 1;
  /** DeviceID → the status it is refused for. */
  readonly devices: Readonly<Record<string, DeniedStatus>>;
}

/**
 * The deny set as a JSON file, replaced atomically (write, then rename): it is saved before the
 * event that changed it is checkpointed, so after a crash the set is at least as new as the
 * checkpoint and the event that follows it is applied again, which changes nothing.
 */
export function denialFile(path: string): DenialStore {
  return {
    async load() {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
        throw unreadable(path, err);
      }
      try {
        const file = JSON.parse(text) as { version?: unknown; devices?: unknown };
        if (file.version !== 1 || typeof file.devices !== 'object' || file.devices === null) {
          throw new Error('not a deny-set file');
        }
        const devices = new Map<string, DeniedStatus>();
        for (const [deviceId, status] of Object.entries(file.devices as Record<string, unknown>)) {
          if (status !== 'suspended' && status !== 'revoked') throw new Error(`status ${String(status)}`);
          devices.set(deviceId, status);
        }
        return devices;
      } catch (err) {
        throw unreadable(path, err);
      }
    },
    async save(devices) {
      const file: DenialFile = { version: 1, devices: Object.fromEntries(devices) };
      const temporary = `${path}.tmp`;
      await writeFile(temporary, JSON.stringify(file));
      await rename(temporary, path);
    },
  };
}

function unreadable(path: string, cause: unknown): GatewayError {
  return new GatewayError(
    GatewayErrorCode.ConfigInvalid,
    `the device deny set ${path} cannot be read; remove its directory to rebuild it from the ledger's events`,
    undefined,
    { cause },
  );
}
