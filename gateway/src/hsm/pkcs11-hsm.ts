import { randomBytes as nodeRandomBytes, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AesCBC, ECDH1, GcmParams, Handle, Mechanism, Template } from 'pkcs11js';
import {
  fabricKeyId,
  normalizeP256Signature,
  p1363ToDer,
  p256EcParams,
  pointFromKeyObject,
  publicKeyForms,
  uncompressedPointFromEcPoint,
} from './ec-p256.js';
import type {
  AesCbcDerivation,
  AesGcmCiphertext,
  EcKeyPairTemplate,
  EcPrivateKeyTemplate,
  EcPublicKey,
  HsmOptions,
  KeyAttributes,
  KeyKind,
  KeyRef,
  PinSource,
  ReplicaHsm,
  SecretKeyInfo,
  SecretKeyTemplate,
  SecretKeyUsage,
  Signer,
} from './hsm.js';
import { HsmError, HsmErrorCode, Recovery, codeForCkr, recoveryFor } from './hsm-error.js';
import {
  acquireModule,
  ckrOf,
  reinitializeModule,
  releaseModule,
  type LoadedModule,
  type Pkcs11Js,
} from './pkcs11-module.js';
import { formatPkcs11Uri, parsePkcs11Uri, type Pkcs11ObjectType, type Pkcs11Uri } from './pkcs11-uri.js';
import { SessionPool } from './session-pool.js';

// PKCS#11 v2.40 §5.6 CK_STATE; pkcs11js exports no CKS_* constants.
const CKS_RO_USER_FUNCTIONS = 1;
const CKS_RW_USER_FUNCTIONS = 3;

const maxDataLength = 16 * 1024 * 1024;
const gcmIvBytes = 12;
const gcmTagBytes = 16;

type SecretOrigin = 'generate' | 'derive' | 'unwrap';

const objectTypeOf: Readonly<Record<KeyKind, Pkcs11ObjectType>> = {
  private: 'private',
  public: 'public',
  secret: 'secret-key',
};

/** Thrown inside an operation to say which PKCS#11 step failed; mapped once in `#run`. */
interface OpContext {
  /** Short description for the message, e.g. `C_Sign with "device-ca"`. */
  what: string;
  /** Authenticated decryption or unwrap: SoftHSM reports a bad tag as CKR_GENERAL_ERROR. */
  integrity?: boolean;
  /** Creates or destroys objects: runs alone (LoadedModule.objects). */
  exclusive?: boolean;
}

function resolvePin(source: PinSource | undefined, uri: Pkcs11Uri, env: HsmOptions['env']): string {
  if (typeof source === 'string') {
    if (source === '') throw new HsmError(HsmErrorCode.PinUnavailable, 'the PIN is empty');
    return source;
  }
  if (source !== undefined && 'env' in source) {
    const value = (env ?? process.env)[source.env];
    if (value === undefined || value === '') {
      throw new HsmError(HsmErrorCode.PinUnavailable, `environment variable ${source.env} is unset or empty`);
    }
    return value;
  }
  const file = source?.file ?? uri.pinSource;
  if (file === undefined) {
    throw new HsmError(HsmErrorCode.PinUnavailable, 'no PIN source: give a PIN, an environment variable or a file');
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new HsmError(HsmErrorCode.PinUnavailable, `PIN file ${file} cannot be read (${code})`);
  }
  // One trailing newline is the file's, not the PIN's (`echo pin > file`).
  const pin = text.replace(/\r?\n$/, '');
  if (pin === '') throw new HsmError(HsmErrorCode.PinUnavailable, `PIN file ${file} is empty`);
  return pin;
}

function assertLabel(label: string): void {
  // eslint-disable-next-line no-control-regex -- labels end up in logs and URIs; control characters never belong
  if (label === '' || Buffer.byteLength(label) > 256 || /[\u0000-\u001f\u007f]/.test(label)) {
    throw new HsmError(HsmErrorCode.InvalidArgument, 'a key label must be 1 to 256 bytes without control characters');
  }
}

function assertKeyRef(ref: KeyRef): void {
  if ('label' in ref) assertLabel(ref.label);
  else if (!(ref.id instanceof Uint8Array) || ref.id.length === 0 || ref.id.length > 256) {
    throw new HsmError(HsmErrorCode.InvalidArgument, 'a key id must be 1 to 256 bytes');
  }
}

function describe(ref: KeyRef): string {
  return 'label' in ref ? `"${ref.label}"` : `id ${Buffer.from(ref.id).toString('hex').slice(0, 64)}`;
}

function assertBytes(value: Uint8Array, name: string, min: number, max: number): void {
  if (!(value instanceof Uint8Array) || value.length < min || value.length > max) {
    throw new HsmError(HsmErrorCode.InvalidArgument, `${name} must be ${min} to ${max} bytes`);
  }
}

/** Handles cached per Hsm before the cache starts over. */
const maxCachedHandles = 50_000;

function handleKey(kind: KeyKind, ref: KeyRef): string {
  return `${kind}:${'label' in ref ? `l:${ref.label}` : `i:${Buffer.from(ref.id).toString('hex')}`}`;
}

function handleNumber(handle: Handle): bigint {
  return handle.length >= 8 ? handle.readBigUInt64LE(0) : BigInt(handle.readUInt32LE(0));
}

/** Opens the token the URI names and logs in; see {@link Hsm}. */
export async function openPkcs11Hsm(options: HsmOptions): Promise<ReplicaHsm> {
  const uri = parsePkcs11Uri(options.uri);
  const modulePath = options.modulePath ?? uri.modulePath;
  if (modulePath === undefined) {
    throw new HsmError(HsmErrorCode.InvalidArgument, 'no PKCS#11 library: set modulePath or the URI\'s "module-path"');
  }
  const sessions = options.sessions ?? 4;
  const maxRetries = options.maxRetries ?? 3;
  if (!Number.isInteger(sessions) || sessions < 1 || sessions > 256) {
    throw new HsmError(HsmErrorCode.InvalidArgument, 'sessions must be an integer from 1 to 256');
  }
  if (!Number.isInteger(maxRetries) || maxRetries < 0 || maxRetries > 10) {
    throw new HsmError(HsmErrorCode.InvalidArgument, 'maxRetries must be an integer from 0 to 10');
  }
  const pin = resolvePin(options.pin, uri, options.env);
  const module = acquireModule(modulePath);
  try {
    const hsm = new Pkcs11Hsm(module, uri, pin, sessions, maxRetries, options.randomBytes ?? nodeRandomBytes);
    // Log in now, so a wrong PIN or a missing token fails at start-up, not at the first request.
    await hsm.warmUp();
    return hsm;
  } catch (err) {
    releaseModule(module);
    if (err instanceof HsmError) throw err;
    throw new HsmError(HsmErrorCode.TokenNotFound, 'cannot open the token', ckrOf(err), { cause: err });
  }
}

class Pkcs11Hsm implements ReplicaHsm {
  readonly #module: LoadedModule;
  readonly #js: Pkcs11Js;
  readonly #uri: Pkcs11Uri;
  readonly #pin: string;
  readonly #maxRetries: number;
  readonly #random: (size: number) => Uint8Array;
  readonly #pool: SessionPool<Handle>;
  /**
   * Object handles by `kind:label` and `kind:id`, so that a key is looked up once, not on every
   * use: SoftHSM's file store reads every object on the token for each C_FindObjects. Entries go
   * when this Hsm destroys the object, and all at once after a session or token fault (handles
   * may not survive it); a handle gone stale meanwhile (another process destroyed the object)
   * fails with CKR_OBJECT_HANDLE_INVALID, which empties the cache and looks the key up again.
   */
  readonly #handles = new Map<string, Handle>();
  /**
   * Session objects (CKA_TOKEN false) this Hsm created, by label. They are visible to this
   * process only (PKCS#11 v2.40 §4.4), so this map is the whole truth about them: creating,
   * using and destroying one never walks the token's objects.
   */
  readonly #sessionObjects = new Map<string, Handle>();
  #slot: Handle;
  #tokenLabel: string;
  #inflight = 0;
  #drained: (() => void) | undefined;
  #closed = false;

  constructor(
    module: LoadedModule,
    uri: Pkcs11Uri,
    pin: string,
    sessions: number,
    maxRetries: number,
    random: (size: number) => Uint8Array,
  ) {
    this.#module = module;
    this.#js = module.js;
    this.#uri = uri;
    this.#pin = pin;
    this.#maxRetries = maxRetries;
    this.#random = random;
    [this.#slot, this.#tokenLabel] = this.#findSlot();
    this.#pool = new SessionPool<Handle>(
      {
        open: () => this.#openSession(),
        close: (s) => {
          this.#module.lib.C_CloseSession(s);
        },
      },
      sessions,
    );
  }

  get tokenLabel(): string {
    return this.#tokenLabel;
  }

  async warmUp(): Promise<void> {
    await this.#run({ what: 'C_OpenSession' }, () => Promise.resolve());
  }

  // ---- token and sessions -------------------------------------------------------------------

  /** The one slot whose token matches the URI's token attributes (RFC 7512 §2.3). */
  #findSlot(): [Handle, string] {
    const lib = this.#module.lib;
    const u = this.#uri;
    const matches: [Handle, string][] = [];
    for (const slot of lib.C_GetSlotList(true)) {
      if (u.slotId !== undefined && handleNumber(slot) !== BigInt(u.slotId)) continue;
      // CK_TOKEN_INFO strings are blank-padded to fixed width (PKCS#11 v2.40 §3.2).
      let info: ReturnType<typeof lib.C_GetTokenInfo>;
      try {
        info = lib.C_GetTokenInfo(slot);
      } catch {
        // A token that cannot describe itself is no match: SoftHSM answers CKR_GENERAL_ERROR for a
        // token pulled out of its store, and that must not hide the other tokens (a cluster joins one).
        continue;
      }
      if ((info.flags & this.#js.CKF_TOKEN_INITIALIZED) === 0) continue;
      const label = info.label.trimEnd();
      if (u.token !== undefined && label !== u.token) continue;
      if (u.manufacturer !== undefined && info.manufacturerID.trimEnd() !== u.manufacturer) continue;
      if (u.serial !== undefined && info.serialNumber.trimEnd() !== u.serial) continue;
      if (u.model !== undefined && info.model.trimEnd() !== u.model) continue;
      matches.push([slot, label]);
    }
    const [first, second] = matches;
    if (first === undefined) {
      throw new HsmError(HsmErrorCode.TokenNotFound, `no initialised token matches ${this.#tokenDescription()}`);
    }
    if (second !== undefined) {
      throw new HsmError(
        HsmErrorCode.TokenNotFound,
        `${matches.length} tokens match ${this.#tokenDescription()}; the URI must name exactly one`,
      );
    }
    return first;
  }

  #tokenDescription(): string {
    return formatPkcs11Uri(this.#uri.token === undefined ? {} : { token: this.#uri.token });
  }

  #openSession(): Handle {
    const js = this.#js;
    const lib = this.#module.lib;
    const session = lib.C_OpenSession(this.#slot, js.CKF_SERIAL_SESSION | js.CKF_RW_SESSION);
    try {
      // Login state is per application and token, not per session (PKCS#11 v2.40 §6.7.6):
      // only the first session after start-up or recovery has to log in.
      const { state } = lib.C_GetSessionInfo(session);
      if (state !== CKS_RW_USER_FUNCTIONS && state !== CKS_RO_USER_FUNCTIONS) this.#login(session);
      return session;
    } catch (err) {
      try {
        lib.C_CloseSession(session);
      } catch {
        // The session is unusable either way.
      }
      throw err;
    }
  }

  #login(session: Handle): void {
    try {
      this.#module.lib.C_Login(session, this.#js.CKU_USER, this.#pin);
    } catch (err) {
      const ckr = ckrOf(err);
      if (ckr === 'CKR_USER_ALREADY_LOGGED_IN') return;
      // The cause is the pkcs11js error: a CKR name and a native stack, never the PIN.
      throw new HsmError(
        ckr === undefined ? HsmErrorCode.SessionFailed : codeForCkr(ckr),
        `C_Login as user on token "${this.#tokenLabel}" failed`,
        ckr,
        { cause: err },
      );
    }
  }

  /**
   * After a token-level fault (PKCS#11 v2.40 §5.1: CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT, …):
   * retire all sessions, forget object handles, find the token again. Synchronous, so no other
   * operation can interleave; the next session opened logs in again.
   */
  #recoverToken(ckr: string | undefined): void {
    this.#pool.invalidate();
    this.#forgetHandles();
    if (ckr === 'CKR_CRYPTOKI_NOT_INITIALIZED') reinitializeModule(this.#module);
    try {
      this.#module.lib.C_CloseAllSessions(this.#slot);
    } catch {
      // The slot may be gone; the sessions with it.
    }
    [this.#slot, this.#tokenLabel] = this.#findSlot();
  }

  /**
   * Runs one operation on one pooled session, with bounded recovery: a broken session is
   * replaced, a token fault triggers {@link #recoverToken}, a stale handle is looked up again.
   * Everything else is mapped to an {@link HsmError} and reported; a wrong PIN is never retried.
   */
  async #run<T>(ctx: OpContext, op: (session: Handle) => Promise<T>): Promise<T> {
    const objects = this.#module.objects;
    return ctx.exclusive === true
      ? objects.exclusive(() => this.#runLocked(ctx, op))
      : objects.shared(() => this.#runLocked(ctx, op));
  }

  async #runLocked<T>(ctx: OpContext, op: (session: Handle) => Promise<T>): Promise<T> {
    if (this.#closed) throw new HsmError(HsmErrorCode.Closed, 'the HSM is closed');
    this.#inflight++;
    try {
      let lastCkr: string | undefined;
      for (let attempt = 0; ; attempt++) {
        let recovery: Recovery;
        try {
          const lease = await this.#pool.acquire();
          try {
            const result = await op(lease.session);
            lease.release();
            return result;
          } catch (err) {
            lastCkr = ckrOf(err);
            recovery = recoveryFor(lastCkr);
            if (recovery === Recovery.Session && lastCkr === 'CKR_OPERATION_ACTIVE') lease.discard();
            else if (recovery === Recovery.Session) lease.drop();
            else lease.release();
            if (recovery === Recovery.None) throw this.#mapError(err, ctx);
            // A second dead session in a row means the others are likely dead too (the library
            // was re-initialised, the token reset): recover the whole token instead.
            if (recovery === Recovery.Session && attempt > 0) recovery = Recovery.Token;
          }
        } catch (err) {
          if (err instanceof HsmError) throw err;
          // C_OpenSession or C_GetSessionInfo failed inside acquire().
          lastCkr = ckrOf(err);
          recovery = recoveryFor(lastCkr);
          if (recovery === Recovery.None) throw this.#mapError(err, ctx);
        }
        // A method call, not the field: the field was narrowed to false before the awaits above.
        if (this.#isClosed()) throw new HsmError(HsmErrorCode.Closed, 'the HSM is closed');
        if (attempt >= this.#maxRetries) {
          throw new HsmError(
            HsmErrorCode.SessionFailed,
            `${ctx.what} still failing after ${attempt} recoveries`,
            lastCkr,
          );
        }
        if (recovery === Recovery.Handle || recovery === Recovery.Session) {
          // Object handles may not survive whatever killed the session; look keys up again.
          this.#forgetHandles();
        } else {
          // Back off a little: a removed device or restarting HSM needs time (10, 40, 90 ms…).
          if (attempt > 0) await sleep(10 * attempt * attempt);
          try {
            this.#recoverToken(lastCkr);
          } catch (err) {
            if (err instanceof HsmError && err.code !== HsmErrorCode.TokenNotFound) throw err;
            lastCkr = ckrOf(err) ?? lastCkr;
          }
        }
      }
    } finally {
      this.#inflight--;
      if (this.#inflight === 0) this.#drained?.();
    }
  }

  #isClosed(): boolean {
    return this.#closed;
  }

  #mapError(err: unknown, ctx: OpContext): HsmError {
    if (err instanceof HsmError) return err;
    const ckr = ckrOf(err);
    if (ckr === undefined) {
      return new HsmError(HsmErrorCode.MechanismFailed, `${ctx.what} failed`, undefined, { cause: err });
    }
    let code = codeForCkr(ckr);
    if (ctx.integrity === true && (ckr === 'CKR_GENERAL_ERROR' || ckr === 'CKR_DATA_LEN_RANGE')) {
      code = HsmErrorCode.IntegrityFailed;
    }
    return new HsmError(code, `${ctx.what} failed`, ckr, { cause: err });
  }

  // ---- objects -------------------------------------------------------------------------------

  #classOf(kind: KeyKind): number {
    const js = this.#js;
    return kind === 'private' ? js.CKO_PRIVATE_KEY : kind === 'public' ? js.CKO_PUBLIC_KEY : js.CKO_SECRET_KEY;
  }

  /** Up to `max` objects of `kind` that `ref` names, searched on the module's worker thread. */
  async #findAll(
    session: Handle,
    ref: Partial<{ label: string; id: Uint8Array }>,
    kind: KeyKind,
    max: number,
  ): Promise<Handle[]> {
    const js = this.#js;
    const template: Template = [{ type: js.CKA_CLASS, value: this.#classOf(kind) }];
    if (ref.label !== undefined) template.push({ type: js.CKA_LABEL, value: ref.label });
    if (ref.id !== undefined) template.push({ type: js.CKA_ID, value: Buffer.from(ref.id) });
    return await this.#module.finder().find(session, template, max);
  }

  /** The handle of the single object of `kind` that `ref` names; cached until a handle goes stale. */
  async #resolve(session: Handle, ref: KeyRef, kind: KeyKind): Promise<Handle> {
    if (kind === 'secret' && 'label' in ref) {
      const own = this.#sessionObjects.get(ref.label);
      if (own !== undefined) return own;
    }
    const cacheKey = handleKey(kind, ref);
    const cached = this.#handles.get(cacheKey);
    if (cached !== undefined) return cached;
    const found = await this.#findAll(session, ref, kind, 2);
    const [handle, other] = found;
    if (handle === undefined) {
      throw new HsmError(HsmErrorCode.KeyNotFound, `no ${kind} key ${describe(ref)} on token "${this.#tokenLabel}"`);
    }
    if (other !== undefined) {
      throw new HsmError(HsmErrorCode.KeyAmbiguous, `more than one ${kind} key ${describe(ref)}`);
    }
    this.#remember(cacheKey, handle);
    return handle;
  }

  #remember(cacheKey: string, handle: Handle): void {
    // Bounded: a gateway touching millions of keys keeps the recent ones, not all of them.
    if (this.#handles.size >= maxCachedHandles) this.#handles.clear();
    this.#handles.set(cacheKey, handle);
  }

  /** After a fault: no cached handle is trusted, and session objects may have gone with their session. */
  #forgetHandles(): void {
    this.#handles.clear();
    this.#sessionObjects.clear();
  }

  /** Drops every cache entry naming one of `destroyed`. */
  #forgetDestroyed(destroyed: readonly Handle[]): void {
    if (destroyed.length === 0) return;
    for (const [key, handle] of this.#handles) {
      if (destroyed.some((d) => d.equals(handle))) this.#handles.delete(key);
    }
    for (const [label, handle] of this.#sessionObjects) {
      if (destroyed.some((d) => d.equals(handle))) this.#sessionObjects.delete(label);
    }
  }

  #uriOf(label: string, id: Uint8Array, kind: KeyKind): string {
    return formatPkcs11Uri({ token: this.#tokenLabel, object: label, id, type: objectTypeOf[kind] });
  }

  /**
   * Refuses a second object with the same label: one being created right now by any Hsm of this
   * process, one of this Hsm's session objects, or, for token objects, one on the token. The
   * token is searched under the shared lock, so searches run beside signing and each other; the
   * label stays reserved until the creation is over.
   */
  async #reserveLabel(label: string, kinds: readonly KeyKind[], onToken: boolean): Promise<() => void> {
    assertLabel(label);
    const reservation = `${this.#tokenLabel}\u0000${label}`;
    const creating = this.#module.creating;
    if (creating.has(reservation) || this.#sessionObjects.has(label)) {
      throw new HsmError(HsmErrorCode.KeyExists, `a key labelled "${label}" is being created or exists`);
    }
    creating.add(reservation);
    const release = (): void => {
      creating.delete(reservation);
    };
    if (!onToken) return release;
    try {
      const exists = await this.#run({ what: 'C_FindObjects' }, async (session) => {
        for (const kind of kinds) {
          if ((await this.#findAll(session, { label }, kind, 1)).length > 0) return true;
        }
        return false;
      });
      if (exists) throw new HsmError(HsmErrorCode.KeyExists, `a key labelled "${label}" already exists`);
    } catch (err) {
      release();
      throw err;
    }
    return release;
  }

  #bool(value: Buffer | undefined): boolean {
    return value !== undefined && value.length > 0 && value[0] !== 0;
  }

  #secretTemplate(t: SecretKeyTemplate, id: Uint8Array, withLength: boolean): Template {
    const js = this.#js;
    const allowed: readonly SecretKeyUsage[] =
      t.type === 'aes-256' ? ['encrypt', 'decrypt', 'wrap', 'unwrap', 'derive'] : ['sign', 'verify', 'derive'];
    for (const u of t.usage) {
      if (!allowed.includes(u)) {
        throw new HsmError(HsmErrorCode.InvalidArgument, `usage "${u}" does not fit a ${t.type} key`);
      }
    }
    const has = (u: SecretKeyUsage): boolean => t.usage.includes(u);
    const template: Template = [
      { type: js.CKA_CLASS, value: js.CKO_SECRET_KEY },
      { type: js.CKA_KEY_TYPE, value: t.type === 'aes-256' ? js.CKK_AES : js.CKK_GENERIC_SECRET },
      { type: js.CKA_TOKEN, value: t.token ?? true },
      { type: js.CKA_PRIVATE, value: true },
      { type: js.CKA_SENSITIVE, value: true },
      { type: js.CKA_EXTRACTABLE, value: t.extractable ?? false },
      { type: js.CKA_LABEL, value: t.label },
      { type: js.CKA_ID, value: Buffer.from(id) },
      { type: js.CKA_ENCRYPT, value: has('encrypt') },
      { type: js.CKA_DECRYPT, value: has('decrypt') },
      { type: js.CKA_WRAP, value: has('wrap') },
      { type: js.CKA_UNWRAP, value: has('unwrap') },
      { type: js.CKA_DERIVE, value: has('derive') },
      { type: js.CKA_SIGN, value: has('sign') },
      { type: js.CKA_VERIFY, value: has('verify') },
    ];
    if (withLength) template.push({ type: js.CKA_VALUE_LEN, value: 32 });
    // Only said when asked: a cluster's replicable key (docs/hsm-cluster.md).
    if (t.wrapWithTrusted === true) template.push({ type: js.CKA_WRAP_WITH_TRUSTED, value: true });
    return template;
  }

  /**
   * Reads back a new secret key, checks its length, and describes it. SoftHSM 2.6.1 leaves
   * CKA_VALUE_LEN at 0 on unwrapped keys (the wrapped length was checked instead) and gives a
   * CKA_CHECK_VALUE on derived keys that does not match the key, so a check value is only
   * reported for generated keys (tested against AES-ECB(key, 0¹²⁸) in software).
   */
  #secretInfo(session: Handle, handle: Handle, t: SecretKeyTemplate, id: Uint8Array, how: SecretOrigin): SecretKeyInfo {
    const js = this.#js;
    const lib = this.#module.lib;
    const [len] = lib.C_GetAttributeValue(session, handle, [{ type: js.CKA_VALUE_LEN }]);
    const length = len === undefined ? 0 : len.value.readUIntLE(0, Math.min(len.value.length, 6));
    if (length !== 32 && !(how === 'unwrap' && length === 0)) {
      lib.C_DestroyObject(session, handle);
      throw new HsmError(HsmErrorCode.KeyNotPermitted, `the new key "${t.label}" is not 32 bytes long`);
    }
    const uri = this.#uriOf(t.label, id, 'secret');
    if (how === 'generate') {
      try {
        const [cv] = lib.C_GetAttributeValue(session, handle, [{ type: js.CKA_CHECK_VALUE }]);
        if (cv !== undefined && cv.value.length > 0) {
          return { label: t.label, id, type: t.type, checkValue: new Uint8Array(cv.value), uri };
        }
      } catch {
        // CKA_CHECK_VALUE is optional (PKCS#11 v2.40 §4.10); not every token computes it.
      }
    }
    return { label: t.label, id, type: t.type, uri };
  }

  /**
   * Creates a secret key object through `create`, refusing duplicate labels. A token object's
   * label is checked against the token; a session object's only against this Hsm's session
   * objects (it is visible to no other process), so its label must not be a token object's:
   * callers give session objects random labels.
   */
  async #newSecret(
    t: SecretKeyTemplate,
    what: string,
    how: SecretOrigin,
    create: (session: Handle, template: Template) => Promise<Handle>,
  ): Promise<SecretKeyInfo> {
    const id = t.id ?? this.#random(16);
    assertBytes(id, 'a key id', 1, 256);
    // An unwrapped key's length comes from the wrapped bytes (RFC 5649 §3, MLI); CKA_VALUE_LEN is read-only then.
    const template = this.#secretTemplate(t, id, how !== 'unwrap');
    const onToken = t.token ?? true;
    const done = await this.#reserveLabel(t.label, ['secret'], onToken);
    try {
      // Session objects live in SoftHSM's memory, not its file store: no need to run alone.
      return await this.#run({ what, integrity: how === 'unwrap', exclusive: onToken }, async (session) => {
        const handle = await create(session, template);
        const info = this.#secretInfo(session, handle, t, id, how);
        if (onToken) this.#remember(handleKey('secret', { id }), handle);
        else this.#sessionObjects.set(t.label, handle);
        return info;
      });
    } finally {
      done();
    }
  }

  // ---- key generation ------------------------------------------------------------------------

  async generateEcKeyPair(t: EcKeyPairTemplate): Promise<EcPublicKey> {
    const js = this.#js;
    const lib = this.#module.lib;
    const token = t.token ?? true;
    const done = await this.#reserveLabel(t.label, ['private', 'public'], true);
    try {
      return await this.#run({ what: `C_GenerateKeyPair "${t.label}"`, exclusive: true }, async (session) => {
        // Generate under a throw-away CKA_ID, then set Fabric's SHA-256(point) once the point
        // is known (bccsp/pkcs11 does the same).
        const tempId = Buffer.from(this.#random(32));
        const common: Template = [
          { type: js.CKA_KEY_TYPE, value: js.CKK_EC },
          { type: js.CKA_TOKEN, value: token },
          { type: js.CKA_LABEL, value: t.label },
          { type: js.CKA_ID, value: tempId },
        ];
        const pair = await lib.C_GenerateKeyPairAsync(
          session,
          { mechanism: js.CKM_EC_KEY_PAIR_GEN },
          [
            ...common,
            { type: js.CKA_CLASS, value: js.CKO_PUBLIC_KEY },
            { type: js.CKA_PRIVATE, value: false },
            { type: js.CKA_EC_PARAMS, value: p256EcParams },
            { type: js.CKA_VERIFY, value: t.sign ?? true },
            // Tokens default some usage flags to true (SoftHSM: CKA_ENCRYPT, CKA_WRAP); say each one.
            { type: js.CKA_ENCRYPT, value: false },
            { type: js.CKA_WRAP, value: false },
            { type: js.CKA_DERIVE, value: false },
          ],
          [
            ...common,
            { type: js.CKA_CLASS, value: js.CKO_PRIVATE_KEY },
            { type: js.CKA_PRIVATE, value: true },
            { type: js.CKA_SENSITIVE, value: true },
            // A cluster's replicable key leaves only under a trusted (SO-made) key: docs/hsm-cluster.md.
            { type: js.CKA_EXTRACTABLE, value: t.replicable === true },
            { type: js.CKA_SIGN, value: t.sign ?? true },
            { type: js.CKA_DERIVE, value: t.derive ?? false },
            { type: js.CKA_DECRYPT, value: false },
            { type: js.CKA_UNWRAP, value: false },
            ...(t.replicable === true ? [{ type: js.CKA_WRAP_WITH_TRUSTED, value: true }] : []),
          ],
        );
        try {
          const [ecPoint] = lib.C_GetAttributeValue(session, pair.publicKey, [{ type: js.CKA_EC_POINT }]);
          const point = uncompressedPointFromEcPoint(ecPoint?.value ?? Buffer.alloc(0));
          const id = fabricKeyId(point);
          lib.C_SetAttributeValue(session, pair.publicKey, [{ type: js.CKA_ID, value: id }]);
          lib.C_SetAttributeValue(session, pair.privateKey, [{ type: js.CKA_ID, value: id }]);
          return { label: t.label, id, ...publicKeyForms(point), uri: this.#uriOf(t.label, id, 'private') };
        } catch (err) {
          // Never leave a half-made pair behind under a throw-away id.
          for (const handle of [pair.publicKey, pair.privateKey]) {
            try {
              lib.C_DestroyObject(session, handle);
            } catch {
              // best effort
            }
          }
          throw err;
        }
      });
    } finally {
      done();
    }
  }

  async generateSecretKey(t: SecretKeyTemplate): Promise<SecretKeyInfo> {
    const js = this.#js;
    const mechanism = t.type === 'aes-256' ? js.CKM_AES_KEY_GEN : js.CKM_GENERIC_SECRET_KEY_GEN;
    return await this.#newSecret(t, `C_GenerateKey "${t.label}"`, 'generate', (session, template) =>
      this.#module.lib.C_GenerateKeyAsync(session, { mechanism }, template),
    );
  }

  // ---- reading -------------------------------------------------------------------------------

  async getPublicKey(ref: KeyRef): Promise<EcPublicKey> {
    assertKeyRef(ref);
    const js = this.#js;
    return await this.#run({ what: `reading public key ${describe(ref)}` }, async (session) => {
      const handle = await this.#resolve(session, ref, 'public');
      const [label, id, params, ecPoint] = this.#module.lib.C_GetAttributeValue(session, handle, [
        { type: js.CKA_LABEL },
        { type: js.CKA_ID },
        { type: js.CKA_EC_PARAMS },
        { type: js.CKA_EC_POINT },
      ]);
      if (params === undefined || !params.value.equals(p256EcParams)) {
        throw new HsmError(HsmErrorCode.KeyNotPermitted, `public key ${describe(ref)} is not on P-256`);
      }
      const point = uncompressedPointFromEcPoint(ecPoint?.value ?? Buffer.alloc(0));
      const labelText = label?.value.toString('utf8') ?? '';
      const idBytes = new Uint8Array(id?.value ?? Buffer.alloc(0));
      return {
        label: labelText,
        id: idBytes,
        ...publicKeyForms(point),
        uri: this.#uriOf(labelText, idBytes, 'public'),
      };
    });
  }

  #attributes(session: Handle, handle: Handle, kind: KeyKind): KeyAttributes {
    const js = this.#js;
    const lib = this.#module.lib;
    const base = [js.CKA_LABEL, js.CKA_ID, js.CKA_KEY_TYPE, js.CKA_TOKEN, js.CKA_PRIVATE];
    const usages: [SecretKeyUsage, number][] =
      kind === 'private'
        ? [
            ['sign', js.CKA_SIGN],
            ['derive', js.CKA_DERIVE],
            ['decrypt', js.CKA_DECRYPT],
            ['unwrap', js.CKA_UNWRAP],
          ]
        : kind === 'public'
          ? [
              ['verify', js.CKA_VERIFY],
              ['encrypt', js.CKA_ENCRYPT],
              ['wrap', js.CKA_WRAP],
              ['derive', js.CKA_DERIVE],
            ]
          : [
              ['encrypt', js.CKA_ENCRYPT],
              ['decrypt', js.CKA_DECRYPT],
              ['wrap', js.CKA_WRAP],
              ['unwrap', js.CKA_UNWRAP],
              ['derive', js.CKA_DERIVE],
              ['sign', js.CKA_SIGN],
              ['verify', js.CKA_VERIFY],
            ];
    const secretish =
      kind === 'public'
        ? []
        : [
            js.CKA_SENSITIVE,
            js.CKA_EXTRACTABLE,
            js.CKA_ALWAYS_SENSITIVE,
            js.CKA_NEVER_EXTRACTABLE,
            js.CKA_WRAP_WITH_TRUSTED,
          ];
    const types = [
      ...base,
      ...usages.map(([, t]) => t),
      ...secretish,
      ...(kind === 'secret' ? [js.CKA_VALUE_LEN] : []),
    ];
    const values = new Map<number, Buffer>();
    for (const attr of lib.C_GetAttributeValue(
      session,
      handle,
      types.map((type) => ({ type })),
    )) {
      values.set(attr.type, attr.value);
    }
    const keyTypeValue = values.get(js.CKA_KEY_TYPE)?.readUIntLE(0, 4);
    const keyType =
      keyTypeValue === js.CKK_EC
        ? 'ec'
        : keyTypeValue === js.CKK_AES
          ? 'aes'
          : keyTypeValue === js.CKK_GENERIC_SECRET
            ? 'generic-secret'
            : 'other';
    const attrs: {
      -readonly [K in keyof KeyAttributes]: KeyAttributes[K];
    } = {
      kind,
      keyType,
      label: values.get(js.CKA_LABEL)?.toString('utf8') ?? '',
      id: new Uint8Array(values.get(js.CKA_ID) ?? Buffer.alloc(0)),
      token: this.#bool(values.get(js.CKA_TOKEN)),
      private: this.#bool(values.get(js.CKA_PRIVATE)),
      usage: usages.filter(([, t]) => this.#bool(values.get(t))).map(([u]) => u),
    };
    if (kind !== 'public') {
      attrs.sensitive = this.#bool(values.get(js.CKA_SENSITIVE));
      attrs.extractable = this.#bool(values.get(js.CKA_EXTRACTABLE));
      attrs.alwaysSensitive = this.#bool(values.get(js.CKA_ALWAYS_SENSITIVE));
      attrs.neverExtractable = this.#bool(values.get(js.CKA_NEVER_EXTRACTABLE));
      attrs.wrapWithTrusted = this.#bool(values.get(js.CKA_WRAP_WITH_TRUSTED));
    }
    const valueLen = values.get(js.CKA_VALUE_LEN);
    if (valueLen !== undefined) attrs.valueLength = valueLen.readUIntLE(0, Math.min(valueLen.length, 6));
    if (kind === 'secret') {
      try {
        // Asked alone: a token without it fails the whole template (CKR_ATTRIBUTE_TYPE_INVALID).
        const [cv] = lib.C_GetAttributeValue(session, handle, [{ type: js.CKA_CHECK_VALUE }]);
        if (cv !== undefined && cv.value.length > 0) attrs.checkValue = new Uint8Array(cv.value);
      } catch {
        // CKA_CHECK_VALUE is optional (PKCS#11 v2.40 §4.10).
      }
    }
    return attrs;
  }

  async getKeyAttributes(ref: KeyRef, kind: KeyKind): Promise<KeyAttributes> {
    assertKeyRef(ref);
    return await this.#run({ what: `reading attributes of ${describe(ref)}` }, async (session) =>
      this.#attributes(session, await this.#resolve(session, ref, kind), kind),
    );
  }

  async findKeys(
    filter: { readonly label?: string; readonly id?: Uint8Array; readonly kind?: KeyKind } = {},
  ): Promise<KeyAttributes[]> {
    const kinds: KeyKind[] = filter.kind === undefined ? ['private', 'public', 'secret'] : [filter.kind];
    const ref: Partial<{ label: string; id: Uint8Array }> = {};
    if (filter.label !== undefined) {
      assertLabel(filter.label);
      ref.label = filter.label;
    }
    if (filter.id !== undefined) {
      assertBytes(filter.id, 'a key id', 1, 256);
      ref.id = filter.id;
    }
    return await this.#run({ what: 'C_FindObjects' }, async (session) => {
      const found: KeyAttributes[] = [];
      for (const kind of kinds) {
        for (const handle of await this.#findAll(session, ref, kind, 100_000)) {
          found.push(this.#attributes(session, handle, kind));
        }
      }
      return found;
    });
  }

  async destroyKey(ref: KeyRef, kinds: readonly KeyKind[] = ['private', 'public', 'secret']): Promise<number> {
    assertKeyRef(ref);
    const lib = this.#module.lib;
    const own = 'label' in ref && kinds.includes('secret') ? this.#sessionObjects.get(ref.label) : undefined;
    if (own !== undefined && 'label' in ref) {
      // One of our session objects: its handle is known, and nothing on the token shares its label.
      const label = ref.label;
      return await this.#run({ what: `C_DestroyObject ${describe(ref)}` }, (session) => {
        this.#sessionObjects.delete(label);
        this.#forgetDestroyed([own]);
        lib.C_DestroyObject(session, own);
        return Promise.resolve(1);
      });
    }
    return await this.#run({ what: `C_DestroyObject ${describe(ref)}`, exclusive: true }, async (session) => {
      const destroyed: Handle[] = [];
      try {
        for (const kind of kinds) {
          for (const handle of await this.#findAll(session, ref, kind, 100_000)) {
            lib.C_DestroyObject(session, handle);
            destroyed.push(handle);
          }
        }
      } finally {
        // Handles may be cached under the label and the id; forget those of the objects gone.
        this.#forgetDestroyed(destroyed);
      }
      return destroyed.length;
    });
  }

  // ---- signing -------------------------------------------------------------------------------

  async signDigest(ref: KeyRef, digest: Uint8Array, format: 'der' | 'ieee-p1363' = 'der'): Promise<Uint8Array> {
    assertKeyRef(ref);
    // SHA-1 … SHA-512 digests; CKM_ECDSA uses the leftmost 256 bits (SEC 1 §4.1.3 step 5).
    assertBytes(digest, 'a digest', 20, 64);
    const js = this.#js;
    const lib = this.#module.lib;
    const raw = await this.#run({ what: `C_Sign with ${describe(ref)}` }, async (session) => {
      const key = await this.#resolve(session, ref, 'private');
      lib.C_SignInit(session, { mechanism: js.CKM_ECDSA }, key);
      return lib.C_SignAsync(session, Buffer.from(digest), Buffer.alloc(64));
    });
    const rs = normalizeP256Signature(raw);
    return format === 'der' ? p1363ToDer(rs) : rs;
  }

  newSigner(ref: KeyRef): Signer {
    assertKeyRef(ref);
    return (digest) => this.signDigest(ref, digest, 'der');
  }

  // ---- derivation ----------------------------------------------------------------------------

  async deriveEcdh(
    privateKey: KeyRef,
    peer: Uint8Array | KeyObject,
    target: SecretKeyTemplate,
  ): Promise<SecretKeyInfo> {
    assertKeyRef(privateKey);
    // Validates the point is on P-256 before the token sees it (invalid-curve attacks).
    const point = publicKeyForms(peer instanceof Uint8Array ? peer : pointFromKeyObject(peer)).point;
    const js = this.#js;
    const ecdhParams: ECDH1 = { type: js.CK_PARAMS_EC_DH, kdf: js.CKD_NULL, publicData: Buffer.from(point) };
    return await this.#newSecret(
      target,
      `C_DeriveKey (CKM_ECDH1_DERIVE) with ${describe(privateKey)}`,
      'derive',
      async (session, template) =>
        this.#module.lib.C_DeriveKeyAsync(
          session,
          {
            mechanism: js.CKM_ECDH1_DERIVE,
            // SoftHSM 2.6.1 accepts only CKD_NULL without shared data; the raw x-coordinate
            // (SEC 1 §3.3.1) is then the key value, and any KDF runs as a second derivation.
            parameter: ecdhParams,
          },
          await this.#resolve(session, privateKey, 'private'),
          template,
        ),
    );
  }

  async deriveAesCbc(baseKey: KeyRef, params: AesCbcDerivation, target: SecretKeyTemplate): Promise<SecretKeyInfo> {
    assertKeyRef(baseKey);
    assertBytes(params.iv, 'the IV', 16, 16);
    assertBytes(params.data, 'the derivation data', 32, 4096);
    if (params.data.length % 16 !== 0) {
      throw new HsmError(HsmErrorCode.InvalidArgument, 'the derivation data must be a multiple of 16 bytes');
    }
    const js = this.#js;
    const cbcParams: AesCBC = {
      type: js.CK_PARAMS_AES_CBC,
      iv: Buffer.from(params.iv),
      data: Buffer.from(params.data),
    };
    return await this.#newSecret(
      target,
      `C_DeriveKey (CKM_AES_CBC_ENCRYPT_DATA) from ${describe(baseKey)}`,
      'derive',
      async (session, template) =>
        this.#module.lib.C_DeriveKeyAsync(
          session,
          {
            mechanism: js.CKM_AES_CBC_ENCRYPT_DATA,
            parameter: cbcParams,
          },
          await this.#resolve(session, baseKey, 'secret'),
          template,
        ),
    );
  }

  // ---- wrapping ------------------------------------------------------------------------------

  async wrapKey(wrappingKey: KeyRef, key: KeyRef): Promise<Uint8Array> {
    assertKeyRef(wrappingKey);
    assertKeyRef(key);
    const js = this.#js;
    return await this.#run({ what: `C_WrapKey (CKM_AES_KEY_WRAP_PAD) of ${describe(key)}` }, async (session) => {
      const wrapped = await this.#module.lib.C_WrapKeyAsync(
        session,
        { mechanism: js.CKM_AES_KEY_WRAP_PAD },
        await this.#resolve(session, wrappingKey, 'secret'),
        await this.#resolve(session, key, 'secret'),
        // RFC 5649 §4.1: output is the key padded to 8 bytes plus an 8-byte integrity block.
        Buffer.alloc(1024),
      );
      return new Uint8Array(wrapped);
    });
  }

  async unwrapKey(unwrappingKey: KeyRef, wrapped: Uint8Array, target: SecretKeyTemplate): Promise<SecretKeyInfo> {
    assertKeyRef(unwrappingKey);
    // RFC 5649 §4.1: a 32-byte key wraps to 32 bytes plus the 8-byte integrity block; anything
    // else cannot be one of our keys, and SoftHSM would not say how long the result is.
    if (!(wrapped instanceof Uint8Array) || wrapped.length !== 40) {
      throw new HsmError(HsmErrorCode.IntegrityFailed, 'a wrapped 256-bit key is 40 bytes (RFC 5649)');
    }
    const js = this.#js;
    return await this.#newSecret(
      target,
      `C_UnwrapKey (CKM_AES_KEY_WRAP_PAD) with ${describe(unwrappingKey)}`,
      'unwrap',
      async (session, template) =>
        this.#module.lib.C_UnwrapKeyAsync(
          session,
          { mechanism: js.CKM_AES_KEY_WRAP_PAD },
          await this.#resolve(session, unwrappingKey, 'secret'),
          Buffer.from(wrapped),
          template,
        ),
    );
  }

  // ---- cluster replication (docs/hsm-cluster.md) ---------------------------------------------

  async wrapPrivateKey(wrappingKey: KeyRef, key: KeyRef): Promise<Uint8Array> {
    assertKeyRef(wrappingKey);
    assertKeyRef(key);
    const js = this.#js;
    return await this.#run(
      { what: `C_WrapKey (CKM_AES_KEY_WRAP_PAD) of private key ${describe(key)}` },
      async (session) => {
        const wrapped = await this.#module.lib.C_WrapKeyAsync(
          session,
          { mechanism: js.CKM_AES_KEY_WRAP_PAD },
          await this.#resolve(session, wrappingKey, 'secret'),
          await this.#resolve(session, key, 'private'),
          // A PKCS#8 P-256 key is about 140 bytes; RFC 5649 adds at most 15.
          Buffer.alloc(1024),
        );
        return new Uint8Array(wrapped);
      },
    );
  }

  async unwrapPrivateKey(unwrappingKey: KeyRef, wrapped: Uint8Array, t: EcPrivateKeyTemplate): Promise<void> {
    assertKeyRef(unwrappingKey);
    assertBytes(wrapped, 'a wrapped private key', 24, 1024);
    assertBytes(t.id, 'a key id', 1, 256);
    const js = this.#js;
    const template: Template = [
      { type: js.CKA_CLASS, value: js.CKO_PRIVATE_KEY },
      { type: js.CKA_KEY_TYPE, value: js.CKK_EC },
      { type: js.CKA_TOKEN, value: true },
      { type: js.CKA_PRIVATE, value: true },
      { type: js.CKA_SENSITIVE, value: true },
      { type: js.CKA_EXTRACTABLE, value: t.replicable },
      { type: js.CKA_LABEL, value: t.label },
      { type: js.CKA_ID, value: Buffer.from(t.id) },
      { type: js.CKA_SIGN, value: t.sign },
      { type: js.CKA_DERIVE, value: t.derive },
      { type: js.CKA_DECRYPT, value: false },
      { type: js.CKA_UNWRAP, value: false },
      ...(t.replicable ? [{ type: js.CKA_WRAP_WITH_TRUSTED, value: true }] : []),
    ];
    const done = await this.#reserveLabel(t.label, ['private'], true);
    try {
      await this.#run(
        { what: `C_UnwrapKey (CKM_AES_KEY_WRAP_PAD) of private key "${t.label}"`, integrity: true, exclusive: true },
        async (session) => {
          await this.#module.lib.C_UnwrapKeyAsync(
            session,
            { mechanism: js.CKM_AES_KEY_WRAP_PAD },
            await this.#resolve(session, unwrappingKey, 'secret'),
            Buffer.from(wrapped),
            template,
          );
        },
      );
    } finally {
      done();
    }
  }

  async importEcPublicKey(t: {
    readonly label: string;
    readonly id: Uint8Array;
    readonly point: Uint8Array;
    readonly verify: boolean;
    readonly derive: boolean;
  }): Promise<EcPublicKey> {
    assertBytes(t.id, 'a key id', 1, 256);
    const forms = publicKeyForms(t.point);
    const js = this.#js;
    const done = await this.#reserveLabel(t.label, ['public'], true);
    try {
      await this.#run({ what: `C_CreateObject public key "${t.label}"`, exclusive: true }, (session) => {
        this.#module.lib.C_CreateObject(session, [
          { type: js.CKA_CLASS, value: js.CKO_PUBLIC_KEY },
          { type: js.CKA_KEY_TYPE, value: js.CKK_EC },
          { type: js.CKA_TOKEN, value: true },
          { type: js.CKA_PRIVATE, value: false },
          { type: js.CKA_LABEL, value: t.label },
          { type: js.CKA_ID, value: Buffer.from(t.id) },
          { type: js.CKA_EC_PARAMS, value: p256EcParams },
          // CKA_EC_POINT is the DER OCTET STRING of the uncompressed point (PKCS#11 v2.40 §2.3.3).
          { type: js.CKA_EC_POINT, value: Buffer.concat([Buffer.from([0x04, forms.point.length]), forms.point]) },
          { type: js.CKA_VERIFY, value: t.verify },
          { type: js.CKA_DERIVE, value: t.derive },
          { type: js.CKA_ENCRYPT, value: false },
          { type: js.CKA_WRAP, value: false },
        ]);
        return Promise.resolve();
      });
    } finally {
      done();
    }
    return { label: t.label, id: t.id, ...forms, uri: this.#uriOf(t.label, t.id, 'public') };
  }

  async aesCheckValue(ref: KeyRef): Promise<Uint8Array> {
    assertKeyRef(ref);
    const js = this.#js;
    const lib = this.#module.lib;
    return await this.#run({ what: `C_Encrypt (CKM_AES_ECB) check value of ${describe(ref)}` }, async (session) => {
      lib.C_EncryptInit(session, { mechanism: js.CKM_AES_ECB }, await this.#resolve(session, ref, 'secret'));
      const block = await lib.C_EncryptAsync(session, Buffer.alloc(16), Buffer.alloc(16));
      return new Uint8Array(block.subarray(0, 3));
    });
  }

  // ---- MAC and encryption --------------------------------------------------------------------

  async hmacSha256(ref: KeyRef, data: Uint8Array): Promise<Uint8Array> {
    assertKeyRef(ref);
    assertBytes(data, 'the data', 0, maxDataLength);
    const js = this.#js;
    const lib = this.#module.lib;
    return await this.#run({ what: `C_Sign (CKM_SHA256_HMAC) with ${describe(ref)}` }, async (session) => {
      lib.C_SignInit(session, { mechanism: js.CKM_SHA256_HMAC }, await this.#resolve(session, ref, 'secret'));
      return new Uint8Array(await lib.C_SignAsync(session, Buffer.from(data), Buffer.alloc(32)));
    });
  }

  #gcm(iv: Uint8Array, aad: Uint8Array | undefined): Mechanism {
    const js = this.#js;
    // CK_GCM_PARAMS as in PKCS#11 v2.40 §2.15.5 (with ulIvBits), the layout SoftHSM 2.6 reads.
    const parameter: GcmParams = {
      type: js.CK_PARAMS_AES_GCM_v240,
      iv: Buffer.from(iv),
      ivBits: iv.length * 8,
      tagBits: gcmTagBytes * 8,
      ...(aad === undefined ? {} : { aad: Buffer.from(aad) }),
    };
    return { mechanism: js.CKM_AES_GCM, parameter };
  }

  async encryptAesGcm(ref: KeyRef, plaintext: Uint8Array, aad?: Uint8Array): Promise<AesGcmCiphertext> {
    assertKeyRef(ref);
    assertBytes(plaintext, 'the plaintext', 0, maxDataLength);
    if (aad !== undefined) assertBytes(aad, 'the AAD', 0, maxDataLength);
    const lib = this.#module.lib;
    return await this.#run({ what: `C_Encrypt (CKM_AES_GCM) with ${describe(ref)}` }, async (session) => {
      // A fresh random 96-bit IV per message (NIST SP 800-38D §8.2.2); at 2^32 messages per key
      // the collision bound is reached, long before which keys rotate.
      const iv = Buffer.from(this.#random(gcmIvBytes));
      lib.C_EncryptInit(session, this.#gcm(iv, aad), await this.#resolve(session, ref, 'secret'));
      const out = await lib.C_EncryptAsync(
        session,
        Buffer.from(plaintext),
        Buffer.alloc(plaintext.length + gcmTagBytes),
      );
      return { iv: new Uint8Array(iv), ciphertext: new Uint8Array(out) };
    });
  }

  async decryptAesGcm(ref: KeyRef, input: AesGcmCiphertext, aad?: Uint8Array): Promise<Uint8Array> {
    assertKeyRef(ref);
    assertBytes(input.iv, 'the IV', gcmIvBytes, gcmIvBytes);
    assertBytes(input.ciphertext, 'the ciphertext', gcmTagBytes, maxDataLength + gcmTagBytes);
    if (aad !== undefined) assertBytes(aad, 'the AAD', 0, maxDataLength);
    const lib = this.#module.lib;
    return await this.#run(
      { what: `C_Decrypt (CKM_AES_GCM) with ${describe(ref)}`, integrity: true },
      async (session) => {
        lib.C_DecryptInit(session, this.#gcm(input.iv, aad), await this.#resolve(session, ref, 'secret'));
        const out = await lib.C_DecryptAsync(
          session,
          Buffer.from(input.ciphertext),
          Buffer.alloc(input.ciphertext.length),
        );
        return new Uint8Array(out);
      },
    );
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  stats(): { sessions: number; queued: number } {
    return { sessions: this.#pool.openCount, queued: this.#pool.queued };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#pool.close();
    // C_Finalize while a worker thread is inside C_Sign would pull the library out from under it.
    if (this.#inflight > 0) {
      await new Promise<void>((resolve) => {
        this.#drained = resolve;
      });
    }
    this.#forgetHandles();
    releaseModule(this.#module);
  }
}
