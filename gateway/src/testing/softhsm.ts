/**
 * Test support: a throw-away SoftHSM2 store (own directory, own softhsm2.conf, one token).
 * SoftHSM reads SOFTHSM2_CONF at C_Initialize, so each suite points the process at its store
 * before opening an Hsm and closes every Hsm (the last close runs C_Finalize) before the next.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const softHsmModule = process.env.KEYFLEET_HSM_MODULE ?? '/usr/lib/softhsm/libsofthsm2.so';

export interface SoftHsmStore {
  readonly dir: string;
  readonly conf: string;
  readonly label: string;
  readonly pin: string;
  readonly soPin: string;
  /** `pkcs11:token=<label>` */
  readonly uri: string;
  /** Adds another initialised token to the same store. */
  addToken(label: string): void;
  /** Restores SOFTHSM2_CONF and deletes the store. */
  remove(): void;
}

/** Creates a store with one initialised token and points SOFTHSM2_CONF at it. */
export function createSoftHsmStore(label = 'keyfleet-test'): SoftHsmStore {
  const dir = mkdtempSync(join(tmpdir(), 'keyfleet-softhsm-'));
  const tokens = join(dir, 'tokens');
  mkdirSync(tokens, { mode: 0o700 });
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`, {
    mode: 0o600,
  });
  const pin = randomBytes(9).toString('base64url');
  const soPin = randomBytes(9).toString('base64url');
  const previous = process.env.SOFTHSM2_CONF;
  const addToken = (tokenLabel: string): void => {
    // PINs on a test's command line are throw-away values for a throw-away token.
    execFileSync('softhsm2-util', ['--init-token', '--free', '--label', tokenLabel, '--so-pin', soPin, '--pin', pin], {
      env: { ...process.env, SOFTHSM2_CONF: conf },
      stdio: 'ignore',
    });
  };
  addToken(label);
  process.env.SOFTHSM2_CONF = conf;
  return {
    dir,
    conf,
    label,
    pin,
    soPin,
    uri: `pkcs11:token=${label}`,
    addToken,
    remove: () => {
      if (previous === undefined) delete process.env.SOFTHSM2_CONF;
      else process.env.SOFTHSM2_CONF = previous;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
