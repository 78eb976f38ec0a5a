/**
 * An {@link Hsm} over the tokens of a cluster (docs/hsm-cluster.md). Calls go to the primary; when
 * its token fails (the module reports a token or session fault, or a failed call is followed by a
 * failed health probe: the cluster KEK no longer found), the next in-sync member becomes primary
 * and the call is sent again there, without a restart. Keys are created on the primary and written
 * through, wrapped under the cluster KEK, to every other in-sync member before the call returns,
 * so any in-sync member holds every key a caller was ever given. A member a write-through could not
 * reach leaves the in-sync set; it takes part again only after {@link HsmCluster.join}.
 */
import type { KeyObject } from 'node:crypto';
import type {
  AesCbcDerivation,
  AesGcmCiphertext,
  EcKeyPairTemplate,
  EcPublicKey,
  Hsm,
  KeyAttributes,
  KeyKind,
  KeyRef,
  ReplicaHsm,
  SecretKeyInfo,
  SecretKeyTemplate,
  Signer,
} from '../hsm.js';
import { HsmError, HsmErrorCode } from '../hsm-error.js';
import { formatPkcs11Uri } from '../pkcs11-uri.js';
import { clusterKekLabel } from './ceremony.js';
import { copyKey, copyMissingKeys, isReplicated, type ReplicatedKey } from './replication.js';

/** One token of the cluster. */
export interface ClusterMember {
  /** The token's label; members are told apart by it on the ledger. */
  readonly name: string;
  readonly hsm: ReplicaHsm;
}

/** Keys copied from one member to another, for the ledger. */
export interface ReplicationEvent {
  readonly source: string;
  readonly target: string;
  /** `join`: a member (new or lagging) brought up to date; `write-through`: a key just created. */
  readonly reason: 'join' | 'write-through';
  readonly keys: readonly ReplicatedKey[];
  readonly at: Date;
}

/** The primary changed. */
export interface FailoverEvent {
  readonly from: string;
  readonly to: string;
  /** The fault that ended the old primary, e.g. `HSM_KEY_NOT_FOUND (probe: cluster KEK gone)`. */
  readonly reason: string;
  readonly at: Date;
}

/** A member left the in-sync set without being primary (a write-through could not reach it). */
export interface MemberLostEvent {
  readonly member: string;
  readonly reason: string;
  readonly at: Date;
}

/** Where the cluster reports what it did; the gateway writes these to the ledger. */
export interface ClusterListener {
  replicated?(event: ReplicationEvent): void;
  failedOver?(event: FailoverEvent): void;
  memberLost?(event: MemberLostEvent): void;
}

export interface HsmClusterOptions {
  /** The cluster's name: the token label ledger URIs name, whichever member holds the key. */
  readonly name: string;
  /** The first is the primary at start; every member must hold the same cluster KEK. */
  readonly members: readonly ClusterMember[];
  readonly listener?: ClusterListener;
  readonly now?: () => Date;
}

/** The cluster's state, for health and metrics. */
export interface ClusterStatus {
  readonly primary: string;
  readonly inSync: readonly string[];
  readonly lost: readonly string[];
  /** Lowercase hex of the cluster KEK's check value (its CKA_ID). */
  readonly kekCheckValue: string;
}

/** What a join did to the member. */
export interface JoinResult {
  /** Keys copied to it from the primary (also reported to the listener as a `join` replication). */
  readonly copied: readonly ReplicatedKey[];
  /** Keys it held that the primary no longer does (destroyed while it was away): destroyed on it. */
  readonly removed: readonly { readonly label: string; readonly id: string }[];
}

export interface HsmCluster extends Hsm {
  status(): ClusterStatus;
  /**
   * Brings a member (a new token, or one that fell out of sync) up to date from the primary and
   * adds it to the in-sync set, on a running cluster: keys created meanwhile are written through
   * to it as well, and keys it holds that the primary no longer does are destroyed on it. A member
   * of the same name that is out of sync is replaced (and closed); one that is in sync is left as
   * it is and the result is empty.
   */
  join(member: ClusterMember): Promise<JoinResult>;
}

/** Errors that say the call was wrong, not the token: never a reason to fail over. */
const callerErrors = new Set<string>([
  HsmErrorCode.InvalidArgument,
  HsmErrorCode.InvalidUri,
  HsmErrorCode.KeyExists,
  HsmErrorCode.KeyAmbiguous,
  HsmErrorCode.PinUnavailable,
  HsmErrorCode.Closed,
]);

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

function reasonOf(err: unknown): string {
  if (err instanceof HsmError) return err.ckr === undefined ? err.code : `${err.code} (${err.ckr})`;
  return err instanceof Error ? err.message.slice(0, 200) : 'unknown error';
}

/**
 * Opens the cluster: checks every member holds the same cluster KEK (a probe key wrapped under the
 * primary's unwraps under each member's), then copies to each member the keys it lacks.
 *
 * @throws HsmError `HSM_KEY_NOT_FOUND` (a member has no cluster KEK: run the ceremony),
 *   `HSM_INTEGRITY_FAILED` (a member's KEK differs, or a copy's check value does)
 */
export async function openHsmCluster(options: HsmClusterOptions): Promise<HsmCluster> {
  const [first] = options.members;
  if (first === undefined || new Set(options.members.map((m) => m.name)).size !== options.members.length) {
    throw new HsmError(HsmErrorCode.InvalidArgument, 'a cluster needs members with distinct names');
  }
  const kekId = await kekIdOf(first);
  const cluster = new Cluster(options, kekId);
  for (const member of options.members.slice(1)) await cluster.join(member);
  return cluster;
}

async function kekIdOf(member: ClusterMember): Promise<Uint8Array> {
  const found = await member.hsm.findKeys({ label: clusterKekLabel, kind: 'secret' });
  const [kek] = found;
  if (kek === undefined || found.length !== 1) {
    throw new HsmError(
      HsmErrorCode.KeyNotFound,
      `token "${member.name}" holds ${found.length} keys labelled ${clusterKekLabel}; run the cluster ceremony`,
    );
  }
  return kek.id;
}

/** Proves `target` holds the KEK of `source`: a session key wrapped under one unwraps under the other. */
async function proveSameKek(source: ClusterMember, target: ClusterMember): Promise<void> {
  const probe = `cluster-probe:${Date.now()}:${Math.random().toString(36).slice(2)}`;
  await source.hsm.generateSecretKey({
    label: probe,
    type: 'aes-256',
    usage: ['encrypt'],
    token: false,
    extractable: true,
    wrapWithTrusted: true,
  });
  try {
    const blob = await source.hsm.wrapKey({ label: clusterKekLabel }, { label: probe });
    try {
      await target.hsm.unwrapKey({ label: clusterKekLabel }, blob, {
        label: probe,
        type: 'aes-256',
        usage: ['encrypt'],
        token: false,
      });
    } catch (err) {
      throw new HsmError(
        HsmErrorCode.IntegrityFailed,
        `token "${target.name}" holds another ${clusterKekLabel} than "${source.name}"`,
        undefined,
        { cause: err },
      );
    }
    await target.hsm.destroyKey({ label: probe }, ['secret']).catch(() => 0);
  } finally {
    await source.hsm.destroyKey({ label: probe }, ['secret']).catch(() => 0);
  }
}

class Cluster implements HsmCluster {
  readonly #name: string;
  readonly #listener: ClusterListener;
  readonly #now: () => Date;
  readonly #kekId: Uint8Array;
  readonly #all: ClusterMember[];
  /** In-sync members, primary first. */
  #inSync: ClusterMember[];
  /** Members being brought up to date: they receive write-throughs but cannot become primary. */
  readonly #joining = new Set<ClusterMember>();
  #generation = 0;
  #failing: Promise<void> | undefined;
  #closed = false;

  constructor(options: HsmClusterOptions, kekId: Uint8Array) {
    this.#name = options.name;
    this.#listener = options.listener ?? {};
    this.#now = options.now ?? (() => new Date());
    this.#kekId = kekId;
    this.#all = [...options.members];
    this.#inSync = this.#all.slice(0, 1);
  }

  get tokenLabel(): string {
    return this.#name;
  }

  #primary(): ClusterMember {
    const primary = this.#inSync[0];
    if (primary === undefined || this.#closed) {
      throw new HsmError(
        this.#closed ? HsmErrorCode.Closed : HsmErrorCode.SessionFailed,
        this.#closed ? 'the HSM cluster is closed' : `no in-sync token is left in cluster "${this.#name}"`,
      );
    }
    return primary;
  }

  status(): ClusterStatus {
    const inSync = this.#inSync.map((m) => m.name);
    return {
      primary: this.#inSync[0]?.name ?? '',
      inSync,
      lost: this.#all.map((m) => m.name).filter((n) => !inSync.includes(n)),
      kekCheckValue: hex(this.#kekId),
    };
  }

  // ---- health and failover -------------------------------------------------------------------

  /** Healthy: the token answers and still holds exactly the cluster's KEK. */
  async #healthy(member: ClusterMember): Promise<boolean> {
    try {
      const found = await member.hsm.findKeys({ label: clusterKekLabel, kind: 'secret' });
      return found.length === 1 && hex(found[0]?.id ?? new Uint8Array()) === hex(this.#kekId);
    } catch {
      return false;
    }
  }

  /**
   * Runs `op` on the primary; on a token fault, fails over and runs it again on the new primary.
   * Every operation sent through here is safe to repeat: reads, signatures (a new one is as good),
   * encryption (a fresh IV), decryption, wrapping (deterministic, RFC 5649), and creations whose
   * object on a dead token nobody was ever told about.
   */
  async #onPrimary<T>(op: (member: ClusterMember) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      if (this.#failing !== undefined) await this.#failing;
      const generation = this.#generation;
      const member = this.#primary();
      try {
        return await op(member);
      } catch (err) {
        if (err instanceof HsmError && callerErrors.has(err.code)) throw err;
        if (attempt >= this.#all.length) throw err;
        if (generation === this.#generation) {
          // Is it the token, or the call? Only a token that fails its probe is left behind.
          if (await this.#healthy(member)) throw err;
          await this.#failOver(generation, member, err);
        }
      }
    }
  }

  /** One failover per dead primary, however many calls saw it die. */
  async #failOver(generation: number, from: ClusterMember, cause: unknown): Promise<void> {
    if (this.#failing !== undefined) {
      await this.#failing;
      return;
    }
    if (generation !== this.#generation) return;
    this.#failing = (async () => {
      this.#inSync = this.#inSync.filter((m) => m !== from);
      while (this.#inSync[0] !== undefined && !(await this.#healthy(this.#inSync[0]))) {
        const dead = this.#inSync.shift();
        if (dead !== undefined) this.#lost(dead, 'failed its health probe during a failover');
      }
      this.#generation++;
      const to = this.#inSync[0];
      if (to !== undefined) {
        this.#listener.failedOver?.({ from: from.name, to: to.name, reason: reasonOf(cause), at: this.#now() });
      }
    })();
    try {
      await this.#failing;
    } finally {
      this.#failing = undefined;
    }
  }

  #lost(member: ClusterMember, reason: string): void {
    this.#inSync = this.#inSync.filter((m) => m !== member);
    this.#joining.delete(member);
    this.#listener.memberLost?.({ member: member.name, reason, at: this.#now() });
  }

  // ---- write-through -------------------------------------------------------------------------

  /**
   * Creates a token object on the primary and copies it to every other in-sync (and joining)
   * member before returning. If the primary dies before every copy is made, the copies made are
   * destroyed and the creation runs again on the new primary: nobody was told of the first key.
   */
  async #create<T>(
    create: (member: ClusterMember) => Promise<T>,
    idOf: (result: T) => Uint8Array,
    kind: 'private' | 'secret',
  ): Promise<T> {
    return await this.#onPrimary(async (primary) => {
      const result = await create(primary);
      const id = idOf(result);
      const [attrs] = await primary.hsm.findKeys({ id, kind });
      if (attrs === undefined) throw new HsmError(HsmErrorCode.KeyNotFound, 'a key vanished right after its creation');
      const targets = [...this.#inSync.filter((m) => m !== primary), ...this.#joining];
      for (const target of targets) {
        let copied: ReplicatedKey;
        try {
          copied = await copyKey(primary.hsm, target.hsm, attrs);
        } catch (err) {
          if (!(await this.#healthy(primary))) {
            // Copies made so far, half-made ones too (the id is fresh, so nothing else has it).
            for (const m of targets) await m.hsm.destroyKey({ id }).catch(() => 0);
            throw err;
          }
          this.#lost(target, `write-through of "${attrs.label}" failed: ${reasonOf(err)}`);
          continue;
        }
        this.#listener.replicated?.({
          source: primary.name,
          target: target.name,
          reason: 'write-through',
          keys: [copied],
          at: this.#now(),
        });
      }
      return result;
    });
  }

  async join(member: ClusterMember): Promise<JoinResult> {
    const known = this.#all.find((m) => m.name === member.name);
    if (known !== undefined && (this.#inSync.includes(known) || this.#joining.has(known))) {
      return { copied: [], removed: [] };
    }
    const primary = this.#primary();
    // A token with another KEK (or none) never becomes a member, not even a lost one.
    await proveSameKek(primary, member);
    if (known !== undefined && known !== member) {
      // A lagging member opened afresh: the old handle's sessions may be dead with the token they had.
      this.#all[this.#all.indexOf(known)] = member;
      await known.hsm.close().catch(() => undefined);
    }
    if (!this.#all.includes(member)) this.#all.push(member);
    this.#joining.add(member);
    try {
      const removed = await this.#removeStale(primary, member);
      const keys = await copyMissingKeys(primary.hsm, member.hsm);
      if (!this.#joining.has(member))
        throw new HsmError(HsmErrorCode.SessionFailed, `"${member.name}" failed while joining`);
      this.#inSync.push(member);
      this.#listener.replicated?.({ source: primary.name, target: member.name, reason: 'join', keys, at: this.#now() });
      return { copied: keys, removed };
    } finally {
      this.#joining.delete(member);
    }
  }

  /**
   * Destroys on a joining member the replicated keys the primary no longer holds. Safe: every key
   * a caller was given is on every in-sync member, the primary included, so a key only the member
   * holds was destroyed while it was away, or made by a creation that never returned. The member
   * is listed before the primary: a key written through to it meanwhile is then on both lists.
   */
  async #removeStale(primary: ClusterMember, member: ClusterMember): Promise<JoinResult['removed']> {
    const keyOf = (k: { kind: KeyKind; id: Uint8Array }) => `${k.kind}:${hex(k.id)}`;
    // Only keys that could have come from the cluster: a cluster key can leave its token (under the
    // trusted KEK at least); a key that never could is no copy, and is left alone.
    const fromCluster = (k: KeyAttributes) => isReplicated(k) && (k.extractable === true || k.wrapWithTrusted === true);
    const onMember = (await member.hsm.findKeys()).filter(fromCluster);
    const onPrimary = new Set((await primary.hsm.findKeys()).filter(isReplicated).map(keyOf));
    const removed: { label: string; id: string }[] = [];
    for (const stale of onMember.filter((k) => !onPrimary.has(keyOf(k)))) {
      // A key pair: both halves.
      await member.hsm.destroyKey({ id: stale.id }, stale.kind === 'private' ? undefined : [stale.kind]);
      removed.push({ label: stale.label, id: hex(stale.id) });
    }
    return removed;
  }

  // ---- the Hsm interface ---------------------------------------------------------------------

  #clusterUri<T extends { readonly label: string; readonly id: Uint8Array; readonly uri: string }>(
    value: T,
    kind: KeyKind,
  ): T {
    const type = kind === 'secret' ? 'secret-key' : kind;
    return { ...value, uri: formatPkcs11Uri({ token: this.#name, object: value.label, id: value.id, type }) };
  }

  async generateEcKeyPair(t: EcKeyPairTemplate): Promise<EcPublicKey> {
    const result =
      t.token === false
        ? await this.#onPrimary((m) => m.hsm.generateEcKeyPair(t))
        : await this.#create(
            (m) => m.hsm.generateEcKeyPair({ ...t, replicable: true }),
            (r) => r.id,
            'private',
          );
    return this.#clusterUri(result, 'private');
  }

  async generateSecretKey(t: SecretKeyTemplate): Promise<SecretKeyInfo> {
    return this.#clusterUri(await this.#createSecret(t, (m, template) => m.hsm.generateSecretKey(template)), 'secret');
  }

  /**
   * Token secrets must be able to leave under the cluster KEK: a key asked for as extractable (a
   * device key, wrapped for its device) stays so; any other becomes extractable only under a
   * trusted key (CKA_WRAP_WITH_TRUSTED), which is as good as never extractable to a user.
   */
  async #createSecret(
    t: SecretKeyTemplate,
    create: (member: ClusterMember, template: SecretKeyTemplate) => Promise<SecretKeyInfo>,
  ): Promise<SecretKeyInfo> {
    if (t.token === false) return await this.#onPrimary((m) => create(m, t));
    const template: SecretKeyTemplate = t.extractable === true ? t : { ...t, extractable: true, wrapWithTrusted: true };
    return await this.#create(
      (m) => create(m, template),
      (r) => r.id,
      'secret',
    );
  }

  async getPublicKey(key: KeyRef): Promise<EcPublicKey> {
    return this.#clusterUri(await this.#onPrimary((m) => m.hsm.getPublicKey(key)), 'public');
  }

  getKeyAttributes(key: KeyRef, kind: KeyKind): Promise<KeyAttributes> {
    return this.#onPrimary(async (m) => await this.#withCheckValue(m, await m.hsm.getKeyAttributes(key, kind)));
  }

  findKeys(filter?: {
    readonly label?: string;
    readonly id?: Uint8Array;
    readonly kind?: KeyKind;
  }): Promise<KeyAttributes[]> {
    return this.#onPrimary(async (m) => {
      const found = await m.hsm.findKeys(filter);
      return await Promise.all(found.map((attrs) => this.#withCheckValue(m, attrs)));
    });
  }

  /**
   * A copy's CKA_CHECK_VALUE, which SoftHSM does not keep for unwrapped keys: computed in the token
   * (AES-ECB of a zero block), so callers that match versions by check value (the ledger's
   * fingerprint) find the copies on any member as they found the originals.
   */
  async #withCheckValue(member: ClusterMember, attrs: KeyAttributes): Promise<KeyAttributes> {
    if (attrs.kind !== 'secret' || attrs.keyType !== 'aes' || attrs.checkValue !== undefined) return attrs;
    if (!attrs.token || !attrs.usage.includes('encrypt')) return attrs;
    return { ...attrs, checkValue: await member.hsm.aesCheckValue({ id: attrs.id }) };
  }

  /** On the primary, then on every other in-sync member (one that fails there is out of sync). */
  async destroyKey(key: KeyRef, kinds?: readonly KeyKind[]): Promise<number> {
    return await this.#onPrimary(async (primary) => {
      const count = await primary.hsm.destroyKey(key, kinds);
      for (const other of [...this.#inSync.filter((m) => m !== primary), ...this.#joining]) {
        try {
          await other.hsm.destroyKey(key, kinds);
        } catch (err) {
          this.#lost(other, `destroying a key failed: ${reasonOf(err)}`);
        }
      }
      return count;
    });
  }

  signDigest(key: KeyRef, digest: Uint8Array, format?: 'der' | 'ieee-p1363'): Promise<Uint8Array> {
    return this.#onPrimary((m) => m.hsm.signDigest(key, digest, format));
  }

  newSigner(key: KeyRef): Signer {
    return (digest) => this.signDigest(key, digest, 'der');
  }

  async deriveEcdh(
    privateKey: KeyRef,
    peer: Uint8Array | KeyObject,
    target: SecretKeyTemplate,
  ): Promise<SecretKeyInfo> {
    return this.#clusterUri(
      await this.#createSecret(target, (m, t) => m.hsm.deriveEcdh(privateKey, peer, t)),
      'secret',
    );
  }

  async deriveAesCbc(baseKey: KeyRef, params: AesCbcDerivation, target: SecretKeyTemplate): Promise<SecretKeyInfo> {
    return this.#clusterUri(
      await this.#createSecret(target, (m, t) => m.hsm.deriveAesCbc(baseKey, params, t)),
      'secret',
    );
  }

  wrapKey(wrappingKey: KeyRef, key: KeyRef): Promise<Uint8Array> {
    return this.#onPrimary((m) => m.hsm.wrapKey(wrappingKey, key));
  }

  async unwrapKey(unwrappingKey: KeyRef, wrapped: Uint8Array, target: SecretKeyTemplate): Promise<SecretKeyInfo> {
    return this.#clusterUri(
      await this.#createSecret(target, (m, t) => m.hsm.unwrapKey(unwrappingKey, wrapped, t)),
      'secret',
    );
  }

  hmacSha256(key: KeyRef, data: Uint8Array): Promise<Uint8Array> {
    return this.#onPrimary((m) => m.hsm.hmacSha256(key, data));
  }

  encryptAesGcm(key: KeyRef, plaintext: Uint8Array, aad?: Uint8Array): Promise<AesGcmCiphertext> {
    return this.#onPrimary((m) => m.hsm.encryptAesGcm(key, plaintext, aad));
  }

  decryptAesGcm(key: KeyRef, ciphertext: AesGcmCiphertext, aad?: Uint8Array): Promise<Uint8Array> {
    return this.#onPrimary((m) => m.hsm.decryptAesGcm(key, ciphertext, aad));
  }

  stats(): { readonly sessions: number; readonly queued: number } {
    return this.#inSync[0]?.hsm.stats() ?? { sessions: 0, queued: 0 };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const member of this.#all) await member.hsm.close().catch(() => undefined);
  }
}
