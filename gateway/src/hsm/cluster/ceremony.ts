/**
 * The security officer's ceremony that gives every token of an HSM cluster the same cluster KEK
 * (docs/hsm-cluster.md). The KEK is made once, in one token, by the SO: CKA_TRUSTED (only an SO
 * can set it), public (usable in user sessions), sensitive, wrap/unwrap only, and extractable only
 * under another trusted key (CKA_WRAP_WITH_TRUSTED). It reaches another token under a transport
 * key that both tokens' SOs agree by ECDH (CKM_ECDH1_DERIVE) between session key pairs: only the
 * two public points cross, the transport key is trusted and exists only as a session object in
 * each token, and it is destroyed with its key pairs as soon as the KEK has crossed.
 */
import type { ECDH1, Handle, Template } from 'pkcs11js';
import { p256EcParams, uncompressedPointFromEcPoint } from '../ec-p256.js';
import { HsmError, HsmErrorCode, codeForCkr } from '../hsm-error.js';
import { acquireModule, ckrOf, releaseModule, type LoadedModule } from '../pkcs11-module.js';

/**
 * CKA_LABEL of the SO-provisioned cluster KEK. Named for what it is, so it is never confused with
 * another trusted key a token may hold. Its CKA_ID is its key check value (3 bytes), set when the
 * KEK is made and copied with it, so any member can name the KEK's check value without a
 * CKA_CHECK_VALUE (SoftHSM keeps none for unwrapped keys); copies are proved equal by unwrapping.
 */
export const clusterKekLabel = 'keyfleet-cluster-kek';

/** What the ceremony did with one token. */
export interface CeremonyToken {
  readonly label: string;
  readonly serial: string;
  /** `created`: the KEK was made here; `present`: it was here already; `joined`: it was brought here. */
  readonly action: 'created' | 'present' | 'joined';
}

export interface CeremonyResult {
  /** Lowercase hex of the KEK's check value (the first 3 bytes of AES-ECB(KEK, 0¹²⁸)). */
  readonly kekCheckValue: string;
  readonly tokens: readonly CeremonyToken[];
}

interface TokenSession {
  readonly label: string;
  readonly session: Handle;
}

interface SoSession extends TokenSession {
  readonly serial: string;
}

/**
 * Makes the cluster KEK in the first listed token that lacks a KEK holder, or takes it from the
 * first token that has one, and brings it into every other listed token that lacks it; then
 * proves every token's KEK equal to the source's. Idempotent: run it again with a new token
 * listed to add that token. No user of this process may be logged in to these tokens meanwhile.
 *
 * @param soPin the security officer's PIN (the same on every token of a development cluster);
 *   never logged, never part of an error
 * @throws HsmError `HSM_TOKEN_NOT_FOUND`, `HSM_PIN_INCORRECT`, `HSM_INTEGRITY_FAILED` (a token
 *   holds a different KEK under the label), `HSM_MECHANISM_FAILED`
 */
export function provisionClusterKek(modulePath: string, tokenLabels: readonly string[], soPin: string): CeremonyResult {
  if (tokenLabels.length < 2 || new Set(tokenLabels).size !== tokenLabels.length) {
    throw new HsmError(HsmErrorCode.InvalidArgument, 'a cluster is at least two distinct tokens');
  }
  if (soPin === '') throw new HsmError(HsmErrorCode.PinUnavailable, 'the SO PIN is empty');
  const m = acquireModule(modulePath);
  const sessions: SoSession[] = [];
  try {
    for (const label of tokenLabels) sessions.push(openSo(m, label, soPin));
    const holders = sessions.filter((s) => findKek(m, s) !== undefined);
    const [source = sessions[0]] = holders;
    if (source === undefined) throw new Error('unreachable: two tokens at least');
    const created = holders.length === 0;
    if (created) createKek(m, source);
    const tokens: CeremonyToken[] = [];
    for (const target of sessions) {
      if (target === source) {
        tokens.push({ label: target.label, serial: target.serial, action: created ? 'created' : 'present' });
        continue;
      }
      const present = findKek(m, target) !== undefined;
      if (!present) transportKek(m, source, target);
      proveSameKek(m, source, target);
      tokens.push({ label: target.label, serial: target.serial, action: present ? 'present' : 'joined' });
    }
    const kek = requireKek(m, source);
    const [id] = m.lib.C_GetAttributeValue(source.session, kek, [{ type: m.js.CKA_ID }]);
    return { kekCheckValue: (id?.value ?? Buffer.alloc(0)).toString('hex'), tokens };
  } finally {
    for (const s of sessions) {
      try {
        m.lib.C_Logout(s.session);
      } catch {
        // closing the session ends the login too
      }
      try {
        m.lib.C_CloseSession(s.session);
      } catch {
        // already gone
      }
    }
    releaseModule(m);
  }
}

function step<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof HsmError) throw err;
    const ckr = ckrOf(err);
    throw new HsmError(ckr === undefined ? HsmErrorCode.MechanismFailed : codeForCkr(ckr), `${what} failed`, ckr, {
      cause: err,
    });
  }
}

function openSo(m: LoadedModule, label: string, soPin: string): SoSession {
  const { lib, js } = m;
  const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trimEnd() === label);
  if (slot === undefined) throw new HsmError(HsmErrorCode.TokenNotFound, `no token labelled "${label}"`);
  const serial = lib.C_GetTokenInfo(slot).serialNumber.trimEnd();
  const session = step(`C_OpenSession on "${label}"`, () =>
    lib.C_OpenSession(slot, js.CKF_SERIAL_SESSION | js.CKF_RW_SESSION),
  );
  try {
    // The cause is pkcs11js's error (a CKR name), never the PIN.
    step(`C_Login as SO on "${label}"`, () => {
      lib.C_Login(session, js.CKU_SO, soPin);
    });
  } catch (err) {
    lib.C_CloseSession(session);
    throw err;
  }
  return { label, serial, session };
}

function findKek(m: LoadedModule, s: TokenSession): Handle | undefined {
  const { lib, js } = m;
  lib.C_FindObjectsInit(s.session, [
    { type: js.CKA_CLASS, value: js.CKO_SECRET_KEY },
    { type: js.CKA_LABEL, value: clusterKekLabel },
  ]);
  try {
    const found = lib.C_FindObjects(s.session, 2);
    if (found.length > 1) {
      throw new HsmError(HsmErrorCode.KeyAmbiguous, `token "${s.label}" holds two keys labelled ${clusterKekLabel}`);
    }
    return found[0];
  } finally {
    lib.C_FindObjectsFinal(s.session);
  }
}

function requireKek(m: LoadedModule, s: TokenSession): Handle {
  const kek = findKek(m, s);
  if (kek === undefined) throw new HsmError(HsmErrorCode.KeyNotFound, `token "${s.label}" holds no cluster KEK`);
  return kek;
}

/** The KEK's attributes on every token: the ones only an SO can give, and wrap/unwrap only. */
function kekTemplate(m: LoadedModule, id: Buffer | undefined): Template {
  const js = m.js;
  return [
    { type: js.CKA_CLASS, value: js.CKO_SECRET_KEY },
    { type: js.CKA_KEY_TYPE, value: js.CKK_AES },
    { type: js.CKA_TOKEN, value: true },
    // Public, so user sessions (the gateway) can wrap and unwrap with it; its value stays sensitive.
    { type: js.CKA_PRIVATE, value: false },
    { type: js.CKA_TRUSTED, value: true },
    { type: js.CKA_SENSITIVE, value: true },
    { type: js.CKA_EXTRACTABLE, value: true },
    { type: js.CKA_WRAP_WITH_TRUSTED, value: true },
    { type: js.CKA_WRAP, value: true },
    { type: js.CKA_UNWRAP, value: true },
    { type: js.CKA_ENCRYPT, value: false },
    { type: js.CKA_DECRYPT, value: false },
    { type: js.CKA_SIGN, value: false },
    { type: js.CKA_VERIFY, value: false },
    { type: js.CKA_DERIVE, value: false },
    { type: js.CKA_LABEL, value: clusterKekLabel },
    ...(id === undefined ? [] : [{ type: js.CKA_ID, value: id }]),
  ];
}

function createKek(m: LoadedModule, s: SoSession): void {
  const { lib, js } = m;
  const kek = step(`C_GenerateKey cluster KEK on "${s.label}"`, () =>
    lib.C_GenerateKey(s.session, { mechanism: js.CKM_AES_KEY_GEN }, [
      ...kekTemplate(m, undefined),
      { type: js.CKA_VALUE_LEN, value: 32 },
    ]),
  );
  const [cv] = lib.C_GetAttributeValue(s.session, kek, [{ type: js.CKA_CHECK_VALUE }]);
  if (cv?.value.length !== 3) {
    lib.C_DestroyObject(s.session, kek);
    throw new HsmError(HsmErrorCode.MechanismFailed, 'the token gives no CKA_CHECK_VALUE for the cluster KEK');
  }
  lib.C_SetAttributeValue(s.session, kek, [{ type: js.CKA_ID, value: cv.value }]);
}

/** A session EC key pair for ECDH, made by the SO: public objects, so the agreed key can be trusted. */
function transportKeyPair(m: LoadedModule, s: SoSession): { privateKey: Handle; publicKey: Handle; point: Buffer } {
  const { lib, js } = m;
  const pair = step(`C_GenerateKeyPair transport on "${s.label}"`, () =>
    lib.C_GenerateKeyPair(
      s.session,
      { mechanism: js.CKM_EC_KEY_PAIR_GEN },
      [
        { type: js.CKA_TOKEN, value: false },
        { type: js.CKA_PRIVATE, value: false },
        { type: js.CKA_EC_PARAMS, value: p256EcParams },
      ],
      [
        { type: js.CKA_TOKEN, value: false },
        { type: js.CKA_PRIVATE, value: false },
        { type: js.CKA_SENSITIVE, value: true },
        { type: js.CKA_EXTRACTABLE, value: false },
        { type: js.CKA_DERIVE, value: true },
      ],
    ),
  );
  const [ecPoint] = lib.C_GetAttributeValue(s.session, pair.publicKey, [{ type: js.CKA_EC_POINT }]);
  return { ...pair, point: uncompressedPointFromEcPoint(ecPoint?.value ?? Buffer.alloc(0)) };
}

/** ECDH into a trusted, wrap/unwrap-only session key: the transport key, identical in both tokens. */
function agreeTransportKey(m: LoadedModule, s: SoSession, own: Handle, peerPoint: Buffer): Handle {
  const { lib, js } = m;
  const parameter: ECDH1 = { type: js.CK_PARAMS_EC_DH, kdf: js.CKD_NULL, publicData: peerPoint };
  return step(`C_DeriveKey transport on "${s.label}"`, () =>
    lib.C_DeriveKey(s.session, { mechanism: js.CKM_ECDH1_DERIVE, parameter }, own, [
      { type: js.CKA_CLASS, value: js.CKO_SECRET_KEY },
      { type: js.CKA_KEY_TYPE, value: js.CKK_AES },
      { type: js.CKA_VALUE_LEN, value: 32 },
      { type: js.CKA_TOKEN, value: false },
      { type: js.CKA_PRIVATE, value: false },
      { type: js.CKA_TRUSTED, value: true },
      { type: js.CKA_SENSITIVE, value: true },
      { type: js.CKA_EXTRACTABLE, value: false },
      { type: js.CKA_WRAP, value: true },
      { type: js.CKA_UNWRAP, value: true },
    ]),
  );
}

function destroyAll(m: LoadedModule, s: TokenSession, handles: readonly (Handle | undefined)[]): void {
  for (const h of handles) {
    if (h === undefined) continue;
    try {
      m.lib.C_DestroyObject(s.session, h);
    } catch {
      // Session objects vanish with the session anyway (PKCS#11 v2.40 §4.4).
    }
  }
}

function transportKek(m: LoadedModule, source: SoSession, target: SoSession): void {
  const { lib, js } = m;
  const kek = requireKek(m, source);
  const [kekId] = lib.C_GetAttributeValue(source.session, kek, [{ type: js.CKA_ID }]);
  const a = transportKeyPair(m, source);
  let b: ReturnType<typeof transportKeyPair> | undefined;
  let ta: Handle | undefined;
  let tb: Handle | undefined;
  try {
    b = transportKeyPair(m, target);
    ta = agreeTransportKey(m, source, a.privateKey, b.point);
    tb = agreeTransportKey(m, target, b.privateKey, a.point);
    const sourceTransport = ta;
    const targetTransport = tb;
    const blob = step('C_WrapKey cluster KEK under the transport key', () =>
      lib.C_WrapKey(source.session, { mechanism: js.CKM_AES_KEY_WRAP_PAD }, sourceTransport, kek, Buffer.alloc(64)),
    );
    step(`C_UnwrapKey cluster KEK into "${target.label}"`, () =>
      lib.C_UnwrapKey(
        target.session,
        { mechanism: js.CKM_AES_KEY_WRAP_PAD },
        targetTransport,
        blob,
        kekTemplate(m, kekId?.value),
      ),
    );
  } finally {
    destroyAll(m, source, [ta, a.privateKey, a.publicKey]);
    if (b !== undefined) destroyAll(m, target, [tb, b.privateKey, b.publicKey]);
  }
}

/**
 * Proves the target's KEK is the source's: a throw-away session key wrapped under the source's KEK
 * unwraps under the target's only if the two are equal (RFC 5649's integrity check, §3).
 */
function proveSameKek(m: LoadedModule, source: TokenSession, target: TokenSession): void {
  const { lib, js } = m;
  const probe = step('C_GenerateKey KEK probe', () =>
    lib.C_GenerateKey(source.session, { mechanism: js.CKM_AES_KEY_GEN }, [
      { type: js.CKA_CLASS, value: js.CKO_SECRET_KEY },
      { type: js.CKA_KEY_TYPE, value: js.CKK_AES },
      { type: js.CKA_VALUE_LEN, value: 32 },
      { type: js.CKA_TOKEN, value: false },
      { type: js.CKA_PRIVATE, value: false },
      { type: js.CKA_SENSITIVE, value: true },
      { type: js.CKA_EXTRACTABLE, value: true },
      { type: js.CKA_WRAP_WITH_TRUSTED, value: true },
    ]),
  );
  let copy: Handle | undefined;
  try {
    const blob = lib.C_WrapKey(
      source.session,
      { mechanism: js.CKM_AES_KEY_WRAP_PAD },
      requireKek(m, source),
      probe,
      Buffer.alloc(64),
    );
    try {
      copy = lib.C_UnwrapKey(target.session, { mechanism: js.CKM_AES_KEY_WRAP_PAD }, requireKek(m, target), blob, [
        { type: js.CKA_CLASS, value: js.CKO_SECRET_KEY },
        { type: js.CKA_KEY_TYPE, value: js.CKK_AES },
        { type: js.CKA_TOKEN, value: false },
        { type: js.CKA_PRIVATE, value: false },
        { type: js.CKA_SENSITIVE, value: true },
        { type: js.CKA_EXTRACTABLE, value: false },
      ]);
    } catch (err) {
      throw new HsmError(
        HsmErrorCode.IntegrityFailed,
        `token "${target.label}" holds a different ${clusterKekLabel} than "${source.label}"`,
        ckrOf(err),
        { cause: err },
      );
    }
  } finally {
    destroyAll(m, source, [probe]);
    if (copy !== undefined) destroyAll(m, target, [copy]);
  }
}
