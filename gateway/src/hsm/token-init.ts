import { HsmError, HsmErrorCode } from './hsm-error.js';
import { acquireModule, ckrOf, releaseModule } from './pkcs11-module.js';

/**
 * Initialises a token with `label` in the first free slot, unless a token with that label is
 * already there (idempotent). For development stores (SoftHSM) only: production tokens are
 * initialised by their custodians. PINs come in as arguments, never through argv of a process.
 *
 * @returns `true` if a token was initialised, `false` if it existed
 */
export function initToken(modulePath: string, label: string, soPin: string, userPin: string): boolean {
  if (label === '' || Buffer.byteLength(label) > 32) {
    throw new HsmError(HsmErrorCode.InvalidArgument, 'a token label is 1 to 32 bytes (PKCS#11 v2.40 §3.2)');
  }
  const m = acquireModule(modulePath);
  const { lib, js } = m;
  const step = (what: string, fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      const ckr = ckrOf(err);
      throw new HsmError(HsmErrorCode.MechanismFailed, `${what} failed`, ckr, { cause: err });
    }
  };
  try {
    let free: Buffer | undefined;
    for (const slot of lib.C_GetSlotList(true)) {
      const info = lib.C_GetTokenInfo(slot);
      if ((info.flags & js.CKF_TOKEN_INITIALIZED) === 0) {
        free ??= slot;
      } else if (info.label.trimEnd() === label) {
        return false;
      }
    }
    if (free === undefined) throw new HsmError(HsmErrorCode.TokenNotFound, 'no free slot to initialise a token in');
    const slot = free;
    // C_InitToken takes a blank-padded 32-byte label (PKCS#11 v2.40 §5.5).
    step('C_InitToken', () => lib.C_InitToken(slot, soPin, label.padEnd(32)));
    // SoftHSM moves the new token to a new slot id: look it up again by label.
    const initialised = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trimEnd() === label);
    if (initialised === undefined) throw new HsmError(HsmErrorCode.TokenNotFound, `token "${label}" vanished`);
    const session = lib.C_OpenSession(initialised, js.CKF_SERIAL_SESSION | js.CKF_RW_SESSION);
    try {
      step('C_Login as SO', () => {
        lib.C_Login(session, js.CKU_SO, soPin);
      });
      step('C_InitPIN', () => {
        lib.C_InitPIN(session, userPin);
      });
      lib.C_Logout(session);
    } finally {
      lib.C_CloseSession(session);
    }
    return true;
  } finally {
    releaseModule(m);
  }
}
