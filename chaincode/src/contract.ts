import { Context, Contract, Info, Returns, Transaction } from 'fabric-contract-api';

import {
  requests,
  activateKeyVersion,
  isProtectingOperation,
  KeyOperations,
  KeyUseRefusal,
  keyVersionForUse,
  AnchorKind,
  AnchorStatus,
  assertDeviceTransition,
  assertKeyPermission,
  assertPolicyWellFormed,
  assertPrincipalFor,
  assertRole,
  type AttestationBatchRecord,
  type AttestationRecord,
  type AttestationResult,
  AttestationStatus,
  type Caller,
  callerName,
  canonicalBytes,
  canonicalJson,
  type Check,
  compromiseKey,
  deactivateKeyVersion,
  destroyKeyVersionRecord,
  type DeviceRecord,
  DeviceStatus,
  DeviceUse,
  type DueKey,
  ErrorCode,
  EventName,
  id,
  int,
  isoTime,
  type KeyRecord,
  KeyState,
  LedgerError,
  Limits,
  merkleLeafHash,
  newKeyRecord,
  NoncePurpose,
  type NonceRecord,
  oneOf,
  parseJson,
  Permission,
  type Proof,
  type PublicJwk,
  type ReferenceValuesRecord,
  type RequestPrincipal,
  Role,
  rotateKeyRecord,
  type RotationAckOutcome,
  setKeyRotationPolicy,
  sha256HexField,
  str,
  TransactionName,
  triggerOnAttestationFailure,
  setShardMap,
  assertShardMapConsistent,
  resolveShard,
  type ShardLoadRecord,
  type ShardMapRecord,
  type TrustAnchorRecord,
  type TxTime,
  txTimeOf,
  validate,
  verifyInclusionProof,
} from '@keyfleet/protocol';
import { assertDeviceHere, assertKeyHere, assertKeyNotArriving, departedRecords } from './device-move-guard.js';
import { callerOf } from './identity.js';
import { assertUsablePublicKey, jwkThumbprint, jwsKeyId, verifyJws } from './signature.js';
import { DuePrefix, KeyType, Store, dueKey, dueRangeEnd } from './store.js';

/** Roles that read everything (the two organisations' staff and services). */
const Overseers = [Role.Operator, Role.Verifier, Role.Auditor] as const;
const AllRoles = Object.values(Role);

/** How far an attestation result's IssuedAt may lie ahead of the transaction time (clock skew). */
const MaxIssuedAtSkewMs = 5 * 60 * 1000;

interface Write<T> {
  store: Store;
  caller: Caller;
  /** Who asked for the write, checked against the caller's role. */
  principal: RequestPrincipal;
  raw: unknown;
  request: T & { Action: string; RequestID: string };
  now: TxTime;
  txId: string;
}

interface Effects {
  puts: [string, unknown][];
  deletes?: string[];
  event: { name: EventName; payload: Record<string, unknown> };
}

function txTime(ctx: Context): TxTime {
  const timestamp = ctx.stub.getTxTimestamp();
  return txTimeOf(timestamp.seconds.toNumber() * 1000 + Math.floor(timestamp.nanos / 1_000_000));
}

/**
 * Who may register or replace which kind of anchor: a verifier (Org2) only verifier anchors, an
 * operator (Org1) every other kind, so neither organisation can put its key where the other's is pinned.
 */
function assertAnchorKindFor(caller: Caller, kind: AnchorKind, what: 'register' | 'replace'): void {
  const verifierKind = kind === AnchorKind.Verifier;
  if (verifierKind !== (caller.Role === Role.Verifier)) {
    throw new LedgerError(
      ErrorCode.AccessDenied,
      verifierKind
        ? `only the verifier organisation may ${what} a verifier anchor`
        : `role ${caller.Role} may ${what} only verifier anchors, not ${kind}`,
    );
  }
}

/** Splits the request's `Principal` from the rest; a missing or malformed one is PRINCIPAL_INVALID. */
function principalOf(raw: unknown): { principal: RequestPrincipal; rest: unknown } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new LedgerError(ErrorCode.InvalidArgument, 'request must be an object');
  }
  const { Principal: value, ...rest } = raw as Record<string, unknown>;
  if (value === undefined) throw new LedgerError(ErrorCode.PrincipalInvalid, 'request.Principal is missing');
  try {
    return { principal: validate(requests.requestPrincipal, value, 'request.Principal'), rest };
  } catch (err) {
    if (err instanceof LedgerError && err.code === ErrorCode.InvalidArgument) {
      throw new LedgerError(ErrorCode.PrincipalInvalid, err.detail);
    }
    throw err;
  }
}

function notFound(code: ErrorCode, what: string): never {
  throw new LedgerError(code, `${what} does not exist`);
}

const argId = (value: string, name: string): string => validate(id, value, name);
const pageSize = (value: string): number => {
  if (!/^\d{1,4}$/.test(value)) throw new LedgerError(ErrorCode.InvalidArgument, 'pageSize must be an integer');
  return validate(int(1, Limits.PageSize), Number(value), 'pageSize');
};
const bookmark = (value: string): string => {
  if (typeof value !== 'string' || value.length > 1024) {
    throw new LedgerError(ErrorCode.InvalidArgument, 'bookmark must be a string of at most 1024 characters');
  }
  return value;
};

/**
 * The keyfleet contract. Write transactions take `(requestJson, jws)`: the request record and a compact
 * ES256 JWS over its canonical JSON made by a registered trust anchor; reads take plain string arguments.
 * Every transaction returns canonical JSON.
 */
@Info({ title: 'keyfleet', description: 'Key lifecycle, device registry and attestation records for edge fleets' })
export class KeyfleetContract extends Contract {
  constructor() {
    super('keyfleet');
  }

  override async unknownTransaction(ctx: Context): Promise<void> {
    const { fcn } = ctx.stub.getFunctionAndParameters();
    await Promise.resolve();
    throw new LedgerError(ErrorCode.UnknownTransaction, `no transaction named ${JSON.stringify(fcn)}`);
  }

  // ---- shared steps of every write --------------------------------------------------------------

  /**
   * Role gate, then parse the request, check its `Principal` against the caller, validate the rest
   * against the transaction's schema, then refuse a RequestID seen before.
   */
  private async authenticate<T extends { Action: string; RequestID: string }>(
    ctx: Context,
    action: TransactionName,
    roles: readonly Role[],
    check: Check<T>,
    requestJson: string,
  ): Promise<Write<T>> {
    const caller = callerOf(ctx);
    assertRole(caller, roles, action);
    const raw = parseJson(requestJson, 'request', Limits.RequestBytes);
    const { principal, rest } = principalOf(raw);
    assertPrincipalFor(caller, principal);
    const request = validate(check, rest);
    const store = new Store(ctx.stub);
    if ((await store.get(store.key(KeyType.Request, request.RequestID))) !== null) {
      throw new LedgerError(ErrorCode.RequestReplayed, `request ${request.RequestID} was already executed`);
    }
    return { store, caller, principal, raw, request, now: txTime(ctx), txId: ctx.stub.getTxID() };
  }

  /** Finds the active anchor named by the JWS `kid`, of the expected kind, and verifies the JWS with it. */
  private async verifySignature(write: Write<unknown>, jws: string, kind: AnchorKind): Promise<TrustAnchorRecord> {
    if (typeof jws === 'string' && jws.length > Limits.JwsBytes) {
      throw new LedgerError(ErrorCode.InvalidArgument, `jws is larger than ${Limits.JwsBytes} bytes`);
    }
    const kid = jwsKeyId(jws);
    const anchor = await write.store.get<TrustAnchorRecord>(write.store.key(KeyType.Anchor, kid));
    if (anchor === null) notFound(ErrorCode.AnchorNotFound, `trust anchor ${kid}`);
    if (anchor.Status !== AnchorStatus.Active) {
      throw new LedgerError(ErrorCode.AnchorInactive, `trust anchor ${kid} is ${anchor.Status}`);
    }
    if (anchor.Kind !== kind) {
      throw new LedgerError(ErrorCode.AnchorKindMismatch, `trust anchor ${kid} is ${anchor.Kind}, not ${kind}`);
    }
    await verifyJws(jws, anchor.PublicKey, canonicalBytes(write.raw));
    return anchor;
  }

  private proof(write: Write<unknown>, anchorId: string, jws: string): Proof {
    return { AnchorID: anchorId, JWS: jws, TxID: write.txId, Principal: write.principal };
  }

  /** All writes happen here, after every check passed, so a rejected request writes nothing. */
  private async apply<T>(ctx: Context, write: Write<T>, effects: Effects, result: unknown): Promise<string> {
    const { store } = write;
    for (const key of effects.deletes ?? []) await store.delete(key);
    for (const [key, value] of effects.puts) await store.put(key, value);
    await store.put(store.key(KeyType.Request, write.request.RequestID), {
      RequestID: write.request.RequestID,
      Action: write.request.Action,
      TxID: write.txId,
      At: write.now.iso,
      By: callerName(write.caller),
      Principal: write.principal,
    });
    ctx.stub.setEvent(
      effects.event.name,
      canonicalBytes({ ...effects.event.payload, Principal: write.principal, TxID: write.txId }),
    );
    return canonicalJson(result);
  }

  private readerOf(ctx: Context, roles: readonly Role[], action: TransactionName): Caller {
    const caller = callerOf(ctx);
    assertRole(caller, roles, action);
    return caller;
  }

  // ---- trust anchors ----------------------------------------------------------------------------

  private async activeMetadataAnchor(store: Store): Promise<TrustAnchorRecord | null> {
    const anchors = await store.all<TrustAnchorRecord>(KeyType.Anchor, []);
    return (
      anchors.find((anchor) => anchor.Kind === AnchorKind.MetadataSigning && anchor.Status === AnchorStatus.Active) ??
      null
    );
  }

  private async assertNewAnchorKey(store: Store, anchorId: string, jwk: PublicJwk): Promise<string> {
    if ((await store.get(store.key(KeyType.Anchor, anchorId))) !== null) {
      throw new LedgerError(ErrorCode.AnchorExists, `trust anchor ${anchorId} already exists`);
    }
    await assertUsablePublicKey(jwk);
    const thumbprint = await jwkThumbprint(jwk);
    const anchors = await store.all<TrustAnchorRecord>(KeyType.Anchor, []);
    const clash = anchors.find((anchor) => anchor.Thumbprint === thumbprint);
    if (clash !== undefined) {
      throw new LedgerError(ErrorCode.AnchorExists, `this public key is already anchor ${clash.AnchorID}`);
    }
    return thumbprint;
  }

  /**
   * Registers a trust anchor. The first metadata-signing anchor bootstraps itself: its JWS is made by the
   * key being registered (proof of possession, `kid` = the new AnchorID). Device-CA anchors are
   * authorised by the active metadata-signing anchor. Verifier anchors are registered by the verifier
   * organisation itself, the same way as the bootstrap: a proof of possession by the key being registered.
   */
  @Transaction()
  @Returns('string')
  async RegisterTrustAnchor(ctx: Context, requestJson: string, jws: string): Promise<string> {
    const write = await this.authenticate(
      ctx,
      TransactionName.RegisterTrustAnchor,
      // Verifier: an attestation verifier is Org2's own process, so Org2 registers its own verifier key
      // (and only that kind): Org1 never vouches for the key that signs Org2's verdicts. The operator
      // keeps the other kinds. contract-anchors.test.ts holds the rows.
      [Role.Operator, Role.Verifier],
      requests.registerTrustAnchor,
      requestJson,
    );
    const { request, store } = write;
    assertAnchorKindFor(write.caller, request.Kind, 'register');
    const metadata = await this.activeMetadataAnchor(store);
    const thumbprint = await this.assertNewAnchorKey(store, request.AnchorID, request.PublicKey);
    let signer: string;
    let possession: string | null = null;
    if (request.Kind === AnchorKind.Verifier) {
      // Proof of possession: the JWS is made by the key being registered, `kid` = the new AnchorID.
      if (jwsKeyId(jws) !== request.AnchorID) {
        throw new LedgerError(
          ErrorCode.SignatureInvalid,
          'a verifier anchor JWS must be made by the anchor it registers',
        );
      }
      await verifyJws(jws, request.PublicKey, canonicalBytes(write.raw));
      signer = request.AnchorID;
      possession = jws;
    } else if (metadata === null) {
      if (request.Kind !== AnchorKind.MetadataSigning) {
        throw new LedgerError(
          ErrorCode.AnchorNotFound,
          'no metadata-signing anchor is registered yet: bootstrap one first',
        );
      }
      if (jwsKeyId(jws) !== request.AnchorID) {
        throw new LedgerError(ErrorCode.SignatureInvalid, 'the bootstrap JWS must be made by the anchor it registers');
      }
      await verifyJws(jws, request.PublicKey, canonicalBytes(write.raw));
      signer = request.AnchorID;
      possession = jws;
    } else {
      if (request.Kind === AnchorKind.MetadataSigning) {
        throw new LedgerError(
          ErrorCode.AnchorExists,
          `metadata-signing anchor ${metadata.AnchorID} is active: use ReplaceTrustAnchor`,
        );
      }
      signer = (await this.verifySignature(write, jws, AnchorKind.MetadataSigning)).AnchorID;
    }
    const anchor: TrustAnchorRecord = {
      DocType: 'anchor',
      AnchorID: request.AnchorID,
      Kind: request.Kind,
      PublicKey: request.PublicKey,
      Thumbprint: thumbprint,
      Description: request.Description,
      Status: AnchorStatus.Active,
      RegisteredAt: write.now.iso,
      RegisteredBy: callerName(write.caller),
      RetiredAt: null,
      ReplacedBy: null,
      PossessionJWS: possession,
      Proof: this.proof(write, signer, jws),
    };
    return this.apply(
      ctx,
      write,
      {
        puts: [[store.key(KeyType.Anchor, anchor.AnchorID), anchor]],
        event: {
          name: EventName.TrustAnchorRegistered,
          payload: { AnchorID: anchor.AnchorID, Kind: anchor.Kind, Thumbprint: thumbprint },
        },
      },
      anchor,
    );
  }

  /**
   * Replaces an anchor by a new key of the same kind. `jws` is by the active metadata-signing anchor (for
   * a verifier anchor: by the verifier anchor being replaced); `possessionJws` is by the new key over the
   * same request.
   */
  @Transaction()
  @Returns('string')
  async ReplaceTrustAnchor(ctx: Context, requestJson: string, jws: string, possessionJws: string): Promise<string> {
    const write = await this.authenticate(
      ctx,
      TransactionName.ReplaceTrustAnchor,
      // Verifier: Org2 rotates its own verifier key, authorised by the old one; an operator replacing
      // it would put an Org1 key where Org2's verdicts are checked (contract-anchors.test.ts).
      [Role.Operator, Role.Verifier],
      requests.replaceTrustAnchor,
      requestJson,
    );
    const { request, store } = write;
    const old = await store.get<TrustAnchorRecord>(store.key(KeyType.Anchor, request.OldAnchorID));
    if (old === null) notFound(ErrorCode.AnchorNotFound, `trust anchor ${request.OldAnchorID}`);
    assertAnchorKindFor(write.caller, old.Kind, 'replace');
    if (old.Status !== AnchorStatus.Active) {
      throw new LedgerError(ErrorCode.AnchorInactive, `trust anchor ${old.AnchorID} is ${old.Status}`);
    }
    let signer: TrustAnchorRecord;
    if (old.Kind === AnchorKind.Verifier) {
      if (jwsKeyId(jws) !== old.AnchorID) {
        throw new LedgerError(ErrorCode.SignatureInvalid, 'a verifier anchor is replaced with a JWS by itself');
      }
      signer = await this.verifySignature(write, jws, AnchorKind.Verifier);
    } else {
      signer = await this.verifySignature(write, jws, AnchorKind.MetadataSigning);
    }
    const thumbprint = await this.assertNewAnchorKey(store, request.NewAnchorID, request.PublicKey);
    if (jwsKeyId(possessionJws) !== request.NewAnchorID) {
      throw new LedgerError(ErrorCode.SignatureInvalid, 'the possession JWS must be made by the new anchor key');
    }
    await verifyJws(possessionJws, request.PublicKey, canonicalBytes(write.raw));
    const proof = this.proof(write, signer.AnchorID, jws);
    const retired: TrustAnchorRecord = {
      ...old,
      Status: AnchorStatus.Retired,
      RetiredAt: write.now.iso,
      ReplacedBy: request.NewAnchorID,
      Proof: proof,
    };
    const replacement: TrustAnchorRecord = {
      DocType: 'anchor',
      AnchorID: request.NewAnchorID,
      Kind: old.Kind,
      PublicKey: request.PublicKey,
      Thumbprint: thumbprint,
      Description: request.Description,
      Status: AnchorStatus.Active,
      RegisteredAt: write.now.iso,
      RegisteredBy: callerName(write.caller),
      RetiredAt: null,
      ReplacedBy: null,
      PossessionJWS: possessionJws,
      Proof: proof,
    };
    return this.apply(
      ctx,
      write,
      {
        puts: [
          [store.key(KeyType.Anchor, retired.AnchorID), retired],
          [store.key(KeyType.Anchor, replacement.AnchorID), replacement],
        ],
        event: {
          name: EventName.TrustAnchorReplaced,
          payload: {
            OldAnchorID: old.AnchorID,
            NewAnchorID: replacement.AnchorID,
            Kind: old.Kind,
            Thumbprint: thumbprint,
          },
        },
      },
      replacement,
    );
  }

  /** Retires a device-CA or verifier anchor. The metadata-signing anchor is only ever replaced. */
  @Transaction()
  @Returns('string')
  async RetireTrustAnchor(ctx: Context, requestJson: string, jws: string): Promise<string> {
    const write = await this.authenticate(
      ctx,
      TransactionName.RetireTrustAnchor,
      [Role.Operator],
      requests.retireTrustAnchor,
      requestJson,
    );
    const { request, store } = write;
    const signer = await this.verifySignature(write, jws, AnchorKind.MetadataSigning);
    const anchor = await store.get<TrustAnchorRecord>(store.key(KeyType.Anchor, request.AnchorID));
    if (anchor === null) notFound(ErrorCode.AnchorNotFound, `trust anchor ${request.AnchorID}`);
    if (anchor.Status !== AnchorStatus.Active) {
      throw new LedgerError(ErrorCode.AnchorInactive, `trust anchor ${anchor.AnchorID} is ${anchor.Status}`);
    }
    if (anchor.Kind === AnchorKind.MetadataSigning) {
      throw new LedgerError(
        ErrorCode.IllegalTransition,
        'the metadata-signing anchor cannot be retired, only replaced (ReplaceTrustAnchor)',
      );
    }
    const retired: TrustAnchorRecord = {
      ...anchor,
      Status: AnchorStatus.Retired,
      RetiredAt: write.now.iso,
      Proof: this.proof(write, signer.AnchorID, jws),
    };
    return this.apply(
      ctx,
      write,
      {
        puts: [[store.key(KeyType.Anchor, anchor.AnchorID), retired]],
        event: {
          name: EventName.TrustAnchorRetired,
          payload: { AnchorID: anchor.AnchorID, Kind: anchor.Kind, Reason: request.Reason },
        },
      },
      retired,
    );
  }

  @Transaction(false)
  @Returns('string')
  async GetTrustAnchor(ctx: Context, anchorId: string): Promise<string> {
    this.readerOf(ctx, AllRoles, TransactionName.GetTrustAnchor);
    const store = new Store(ctx.stub);
    const anchor = await store.get<TrustAnchorRecord>(store.key(KeyType.Anchor, argId(anchorId, 'anchorId')));
    if (anchor === null) notFound(ErrorCode.AnchorNotFound, `trust anchor ${anchorId}`);
    return canonicalJson(anchor);
  }

  @Transaction(false)
  @Returns('string')
  async ListTrustAnchors(ctx: Context): Promise<string> {
    this.readerOf(ctx, AllRoles, TransactionName.ListTrustAnchors);
    const store = new Store(ctx.stub);
    return canonicalJson(await store.all<TrustAnchorRecord>(KeyType.Anchor, []));
  }

  // ---- devices ----------------------------------------------------------------------------------

  /** A device of this shard; one a move froze or took away is refused as `use` demands (shard moves). */
  private async loadDevice(store: Store, deviceId: string, use: DeviceUse = DeviceUse.Write): Promise<DeviceRecord> {
    const device = await store.get<DeviceRecord>(store.key(KeyType.Device, deviceId));
    // The marker first: a device a move is bringing here is "retry shortly", not "not found".
    await assertDeviceHere(store, deviceId, use);
    if (device === null) notFound(ErrorCode.DeviceNotFound, `device ${deviceId}`);
    return device;
  }

  @Transaction()
  @Returns('string')
  async EnrolDevice(ctx: Context, requestJson: string, jws: string): Promise<string> {
    const write = await this.authenticate(
      ctx,
      TransactionName.EnrolDevice,
      [Role.Operator],
      requests.enrolDevice,
      requestJson,
    );
    const { request, store } = write;
    const signer = await this.verifySignature(write, jws, AnchorKind.MetadataSigning);
    // The token first: a replayed token is reported as such, whatever else is wrong.
    const tokenDigest = request.EnrolmentNonceDigest;
    if (tokenDigest !== null) await this.assertNonceUnused(store, tokenDigest);
    if ((await store.get(store.key(KeyType.Device, request.DeviceID))) !== null) {
      throw new LedgerError(ErrorCode.DeviceExists, `device ${request.DeviceID} is already enrolled`);
    }
    const device: DeviceRecord = {
      DocType: 'device',
      DeviceID: request.DeviceID,
      Group: request.Group,
      Location: request.Location,
      Function: request.Function,
      Shard: request.Shard,
      CertFingerprint: request.CertFingerprint,
      Status: DeviceStatus.Active,
      StatusReason: null,
      RevocationReason: null,
      EnrolledAt: write.now.iso,
      EnrolledBy: callerName(write.caller),
      UpdatedAt: write.now.iso,
      LastAttestation: null,
      Proof: this.proof(write, signer.AnchorID, jws),
    };
    return this.apply(
      ctx,
      write,
      {
        puts: [
          [store.key(KeyType.Device, device.DeviceID), device],
          [store.key(KeyType.DeviceByGroup, device.Group, device.DeviceID), { DeviceID: device.DeviceID }],
          ...(tokenDigest === null
            ? []
            : [
                [
                  store.key(KeyType.Nonce, tokenDigest),
                  this.nonceRecord(write, tokenDigest, NoncePurpose.Enrolment, device.DeviceID),
                ] as [string, unknown],
              ]),
        ],
        event: {
          name: EventName.DeviceEnrolled,
          payload: { DeviceID: device.DeviceID, Group: device.Group, Shard: device.Shard },
        },
      },
      device,
    );
  }

  private async changeDeviceStatus(
    ctx: Context,
    action: TransactionName,
    check: Check<{ Action: string; RequestID: string; DeviceID: string; Reason: string; Comment?: string | null }>,
    to: DeviceStatus,
    event: EventName,
    requestJson: string,
    jws: string,
  ): Promise<string> {
    const write = await this.authenticate(ctx, action, [Role.Operator], check, requestJson);
    const { request, store } = write;
    const signer = await this.verifySignature(write, jws, AnchorKind.MetadataSigning);
    const device = await this.loadDevice(store, request.DeviceID);
    assertDeviceTransition(device.DeviceID, device.Status, to);
    const updated: DeviceRecord = {
      ...device,
      Status: to,
      StatusReason: to === DeviceStatus.Revoked ? (request.Comment ?? null) : request.Reason,
      RevocationReason: to === DeviceStatus.Revoked ? (request.Reason as DeviceRecord['RevocationReason']) : null,
      UpdatedAt: write.now.iso,
      Proof: this.proof(write, signer.AnchorID, jws),
    };
    return this.apply(
      ctx,
      write,
      {
        puts: [[store.key(KeyType.Device, device.DeviceID), updated]],
        event: { name: event, payload: { DeviceID: device.DeviceID, From: device.Status, Reason: request.Reason } },
      },
      updated,
    );
  }

  @Transaction()
  @Returns('string')
  async SuspendDevice(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return this.changeDeviceStatus(
      ctx,
      TransactionName.SuspendDevice,
      requests.suspendDevice,
      DeviceStatus.Suspended,
      EventName.DeviceSuspended,
      requestJson,
      jws,
    );
  }

  @Transaction()
  @Returns('string')
  async ReinstateDevice(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return this.changeDeviceStatus(
      ctx,
      TransactionName.ReinstateDevice,
      requests.reinstateDevice,
      DeviceStatus.Active,
      EventName.DeviceReinstated,
      requestJson,
      jws,
    );
  }

  @Transaction()
  @Returns('string')
  async RevokeDevice(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return this.changeDeviceStatus(
      ctx,
      TransactionName.RevokeDevice,
      requests.revokeDevice,
      DeviceStatus.Revoked,
      EventName.DeviceRevoked,
      requestJson,
      jws,
    );
  }

  /** Overseers read any device; a device reads only itself. */
  @Transaction(false)
  @Returns('string')
  async GetDevice(ctx: Context, deviceId: string): Promise<string> {
    const caller = this.readerOf(ctx, [...Overseers, Role.Device], TransactionName.GetDevice);
    const checkedId = argId(deviceId, 'deviceId');
    if (caller.Role === Role.Device && caller.ID !== checkedId) {
      throw new LedgerError(ErrorCode.AccessDenied, `device ${caller.ID} may only read itself`);
    }
    return canonicalJson(await this.loadDevice(new Store(ctx.stub), checkedId, DeviceUse.Read));
  }

  @Transaction(false)
  @Returns('string')
  async GetDeviceHistory(ctx: Context, deviceId: string): Promise<string> {
    this.readerOf(ctx, Overseers, TransactionName.GetDeviceHistory);
    const store = new Store(ctx.stub);
    const key = store.key(KeyType.Device, argId(deviceId, 'deviceId'));
    await this.loadDevice(store, deviceId, DeviceUse.History);
    return canonicalJson(await store.history<DeviceRecord>(key));
  }

  @Transaction(false)
  @Returns('string')
  async ListDevicesByGroup(ctx: Context, group: string, size: string, mark: string): Promise<string> {
    this.readerOf(ctx, Overseers, TransactionName.ListDevicesByGroup);
    const store = new Store(ctx.stub);
    const page = await store.pageByPartialKey<{ DeviceID: string }>(
      KeyType.DeviceByGroup,
      [argId(group, 'group')],
      pageSize(size),
      bookmark(mark),
    );
    const devices: DeviceRecord[] = [];
    for (const entry of page.Records) devices.push(await this.loadDevice(store, entry.DeviceID, DeviceUse.Read));
    return canonicalJson({ ...page, Records: devices });
  }

  // ---- keys -------------------------------------------------------------------------------------

  private async loadKey(store: Store, keyId: string, use: DeviceUse = DeviceUse.Write): Promise<KeyRecord> {
    const key = await store.get<KeyRecord>(store.key(KeyType.Key, keyId));
    if (key === null) {
      await assertKeyNotArriving(store, keyId);
      notFound(ErrorCode.KeyNotFound, `key ${keyId}`);
    }
    await assertKeyHere(store, key, use);
    return key;
  }

  /** The writes that keep the due-for-rotation index in step with a key's NextRotationDue. */
  private dueIndex(before: KeyRecord | null, after: KeyRecord): Pick<Effects, 'puts' | 'deletes'> {
    const oldKey = before?.NextRotationDue == null ? null : dueKey(Date.parse(before.NextRotationDue), before.KeyID);
    const newKey = after.NextRotationDue === null ? null : dueKey(Date.parse(after.NextRotationDue), after.KeyID);
    if (oldKey === newKey) return { puts: [] };
    return {
      puts: newKey === null ? [] : [[newKey, { KeyID: after.KeyID, NextRotationDue: after.NextRotationDue }]],
      deletes: oldKey === null ? [] : [oldKey],
    };
  }

  private keyEffects(
    store: Store,
    before: KeyRecord | null,
    after: KeyRecord,
    event: Effects['event'],
    extra: [string, unknown][] = [],
  ): Effects {
    const due = this.dueIndex(before, after);
    return {
      puts: [[store.key(KeyType.Key, after.KeyID), after], ...due.puts, ...extra],
      deletes: due.deletes ?? [],
      event,
    };
  }

  @Transaction()
  @Returns('string')
  async RegisterKey(ctx: Context, requestJson: string, jws: string): Promise<string> {
    const write = await this.authenticate(
      ctx,
      TransactionName.RegisterKey,
      [Role.Operator],
      requests.registerKey,
      requestJson,
    );
    const { request, store } = write;
    const signer = await this.verifySignature(write, jws, AnchorKind.MetadataSigning);
    assertPolicyWellFormed(request.AccessPolicy);
    if ((await store.get(store.key(KeyType.Key, request.KeyID))) !== null) {
      throw new LedgerError(ErrorCode.KeyExists, `key ${request.KeyID} is already registered`);
    }
    if (request.Owner.Type === 'device') {
      const device = await this.loadDevice(store, request.Owner.ID);
      if (device.Status === DeviceStatus.Revoked) {
        throw new LedgerError(ErrorCode.DeviceRevoked, `device ${device.DeviceID} is revoked`);
      }
    }
    const key = newKeyRecord(request, write.now, callerName(write.caller), this.proof(write, signer.AnchorID, jws));
    return this.apply(
      ctx,
      write,
      this.keyEffects(
        store,
        null,
        key,
        {
          name: EventName.KeyRegistered,
          payload: { KeyID: key.KeyID, Owner: key.Owner, Version: 1, State: request.InitialState },
        },
        [[store.key(KeyType.KeyByOwner, key.Owner.Type, key.Owner.ID, key.KeyID), { KeyID: key.KeyID }]],
      ),
      key,
    );
  }

  /** Shared path of the transactions that change one key under one permission. */
  private async changeKey<T extends { Action: string; RequestID: string; KeyID: string }>(
    ctx: Context,
    action: TransactionName,
    check: Check<T>,
    permission: Permission,
    requestJson: string,
    jws: string,
    change: (
      key: KeyRecord,
      write: Write<T>,
      proof: Proof,
    ) => Promise<{ key: KeyRecord; effects?: [string, unknown][] }> | { key: KeyRecord; effects?: [string, unknown][] },
    event: (before: KeyRecord, after: KeyRecord, request: T) => Effects['event'],
  ): Promise<string> {
    const write = await this.authenticate(
      ctx,
      action,
      [Role.Operator, Role.Application, Role.Device],
      check,
      requestJson,
    );
    const { request, store } = write;
    const signer = await this.verifySignature(write, jws, AnchorKind.MetadataSigning);
    const before = await this.loadKey(store, request.KeyID);
    assertKeyPermission(before, write.caller, permission);
    const { key, effects } = await change(before, write, this.proof(write, signer.AnchorID, jws));
    return this.apply(ctx, write, this.keyEffects(store, before, key, event(before, key, request), effects), key);
  }

  @Transaction()
  @Returns('string')
  async ActivateKey(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return this.changeKey(
      ctx,
      TransactionName.ActivateKey,
      requests.activateKey,
      Permission.Administer,
      requestJson,
      jws,
      (key, write, proof) => ({ key: activateKeyVersion(key, write.request.Version, write.now, proof) }),
      (_before, after, request) => ({
        name: EventName.KeyActivated,
        payload: { KeyID: after.KeyID, Version: request.Version },
      }),
    );
  }

  /**
   * Rotates: the new version becomes active, the previous active one deactivated. `CurrentVersion` must
   * be the latest version (so of several gateways racing, one wins). A next-key commitment, when set,
   * must match the new version; a `NonceDigest`, when given, is consumed as a rotation nonce.
   */
  @Transaction()
  @Returns('string')
  async RotateKey(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return this.changeKey(
      ctx,
      TransactionName.RotateKey,
      requests.rotateKey,
      Permission.Rotate,
      requestJson,
      jws,
      async (key, write, proof) => {
        const rotated = rotateKeyRecord(key, write.request, write.now, proof);
        const digest = write.request.NonceDigest;
        if (digest === null) return { key: rotated };
        await this.assertNonceUnused(write.store, digest);
        const nonce = this.nonceRecord(write, digest, NoncePurpose.Rotation, key.KeyID);
        return { key: rotated, effects: [[write.store.key(KeyType.Nonce, digest), nonce]] };
      },
      (before, after, request) => ({
        name: EventName.KeyRotated,
        payload: {
          KeyID: after.KeyID,
          Version: after.LatestVersion,
          PreviousVersion: before.ActiveVersion,
          NonceDigest: request.NonceDigest,
        },
      }),
    );
  }

  @Transaction()
  @Returns('string')
  async DeactivateKey(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return this.changeKey(
      ctx,
      TransactionName.DeactivateKey,
      requests.deactivateKey,
      Permission.Administer,
      requestJson,
      jws,
      (key, write, proof) => ({ key: deactivateKeyVersion(key, write.request.Version, write.now, proof) }),
      (_before, after, request) => ({
        name: EventName.KeyDeactivated,
        payload: { KeyID: after.KeyID, Version: request.Version },
      }),
    );
  }

  @Transaction()
  @Returns('string')
  async MarkKeyCompromised(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return this.changeKey(
      ctx,
      TransactionName.MarkKeyCompromised,
      requests.markKeyCompromised,
      Permission.Administer,
      requestJson,
      jws,
      (key, write, proof) => ({ key: compromiseKey(key, write.request.Version, write.now, proof) }),
      (before, after, request) => ({
        name: EventName.KeyCompromised,
        payload: {
          KeyID: after.KeyID,
          Versions: after.Versions.filter(
            (version) =>
              version.State === KeyState.Compromised &&
              before.Versions.find((old) => old.Version === version.Version)?.State !== KeyState.Compromised,
          ).map((version) => version.Version),
          Reason: request.Reason,
          NextRotationDue: after.NextRotationDue,
        },
      }),
    );
  }

  @Transaction()
  @Returns('string')
  async DestroyKeyVersion(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return this.changeKey(
      ctx,
      TransactionName.DestroyKeyVersion,
      requests.destroyKeyVersion,
      Permission.Administer,
      requestJson,
      jws,
      (key, write, proof) => ({ key: destroyKeyVersionRecord(key, write.request.Version, write.now, proof) }),
      (_before, after, request) => ({
        name: EventName.KeyVersionDestroyed,
        payload: { KeyID: after.KeyID, Version: request.Version },
      }),
    );
  }

  @Transaction()
  @Returns('string')
  async SetAccessPolicy(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return this.changeKey(
      ctx,
      TransactionName.SetAccessPolicy,
      requests.setAccessPolicy,
      Permission.Administer,
      requestJson,
      jws,
      (key, write, proof) => {
        assertPolicyWellFormed(write.request.AccessPolicy);
        return {
          key: { ...key, AccessPolicy: write.request.AccessPolicy, UpdatedAt: write.now.iso, Proof: proof },
        };
      },
      (_before, after) => ({
        name: EventName.AccessPolicyChanged,
        payload: { KeyID: after.KeyID, AccessPolicy: after.AccessPolicy },
      }),
    );
  }

  @Transaction()
  @Returns('string')
  async SetRotationPolicy(ctx: Context, requestJson: string, jws: string): Promise<string> {
    return this.changeKey(
      ctx,
      TransactionName.SetRotationPolicy,
      requests.setRotationPolicy,
      Permission.Administer,
      requestJson,
      jws,
      (key, write, proof) => ({
        key: setKeyRotationPolicy(key, write.request.RotationPolicy, write.now, proof),
      }),
      (_before, after) => ({
        name: EventName.RotationPolicyChanged,
        payload: { KeyID: after.KeyID, RotationPolicy: after.RotationPolicy, NextRotationDue: after.NextRotationDue },
      }),
    );
  }

  @Transaction(false)
  @Returns('string')
  async GetKey(ctx: Context, keyId: string): Promise<string> {
    const caller = this.readerOf(ctx, AllRoles, TransactionName.GetKey);
    const key = await this.loadKey(new Store(ctx.stub), argId(keyId, 'keyId'), DeviceUse.Read);
    assertKeyPermission(key, caller, Permission.Read);
    return canonicalJson(key);
  }

  /** Every committed state of the key record: each version and state change with its TxID and time. */
  @Transaction(false)
  @Returns('string')
  async GetKeyHistory(ctx: Context, keyId: string): Promise<string> {
    const caller = this.readerOf(ctx, AllRoles, TransactionName.GetKeyHistory);
    const store = new Store(ctx.stub);
    const key = await this.loadKey(store, argId(keyId, 'keyId'), DeviceUse.History);
    assertKeyPermission(key, caller, Permission.Read);
    return canonicalJson(await store.history<KeyRecord>(store.key(KeyType.Key, key.KeyID)));
  }

  /** Keys whose NextRotationDue is at or before `at` (ISO time), earliest first. */
  @Transaction(false)
  @Returns('string')
  async ListKeysDueForRotation(ctx: Context, at: string, size: string, mark: string): Promise<string> {
    this.readerOf(ctx, Overseers, TransactionName.ListKeysDueForRotation);
    const atMs = Date.parse(validate(isoTime, at, 'at'));
    const store = new Store(ctx.stub);
    const page = await store.pageByRange<{ KeyID: string }>(
      DuePrefix,
      dueRangeEnd(atMs),
      pageSize(size),
      bookmark(mark),
    );
    const due: DueKey[] = [];
    for (const entry of page.Records) {
      const key = await this.loadKey(store, entry.KeyID, DeviceUse.Read);
      if (key.NextRotationDue === null) continue;
      const graceEnds = Date.parse(key.NextRotationDue) + key.RotationPolicy.GraceSeconds * 1000;
      due.push({
        KeyID: key.KeyID,
        NextRotationDue: key.NextRotationDue,
        GraceEndsAt: new Date(graceEnds).toISOString(),
        Overdue: atMs > graceEnds,
        ActiveVersion: key.ActiveVersion,
      });
    }
    return canonicalJson({ ...page, Records: due });
  }

  /**
   * Whether the caller may perform `operation` with a key now: needs Use permission; protect operations
   * (encrypt, sign, wrap, mac-generate) need the active version, process operations (decrypt, verify,
   * unwrap, mac-verify) any version not destroyed. `version` empty means the active version.
   */
  @Transaction(false)
  @Returns('string')
  async AuthorizeKeyUse(ctx: Context, keyId: string, operation: string, version: string): Promise<string> {
    const caller = this.readerOf(ctx, AllRoles, TransactionName.AuthorizeKeyUse);
    const op = validate(oneOf(KeyOperations), operation, 'operation');
    const wanted = version === '' ? null : validate(str({ max: 7, pattern: /^[1-9]\d*$/ }), version, 'version');
    const key = await this.loadKey(new Store(ctx.stub), argId(keyId, 'keyId'), DeviceUse.Read);
    assertKeyPermission(key, caller, Permission.Use);
    // The one key-use rule (protocol key-use.ts). The ledger cannot know a caller's consent, so a
    // compromised version may process: the gateway asks its callers before it gets here.
    const choice = keyVersionForUse(key, wanted === null ? null : Number(wanted), {
      protect: isProtectingOperation(op),
      allowCompromised: true,
    });
    if (!choice.ok) {
      if (choice.refusal === KeyUseRefusal.VersionNotFound) {
        throw new LedgerError(ErrorCode.VersionNotFound, `key ${key.KeyID} has no version ${choice.version ?? '?'}`);
      }
      const found = key.Versions.find((candidate) => candidate.Version === choice.version);
      throw new LedgerError(
        ErrorCode.KeyNotUsable,
        found === undefined
          ? `key ${key.KeyID} has no active version`
          : `key ${key.KeyID} version ${found.Version} is ${found.State}: ${op} is not allowed`,
      );
    }
    const target = choice.version;
    return canonicalJson({
      KeyID: key.KeyID,
      Version: target.Version,
      State: target.State,
      Operation: op,
      Pkcs11URI: target.Pkcs11URI,
      Fingerprint: target.Fingerprint,
      Caller: callerName(caller),
    });
  }

  // ---- nonces -----------------------------------------------------------------------------------

  private async assertNonceUnused(store: Store, digest: string): Promise<void> {
    const used = await store.get<NonceRecord>(store.key(KeyType.Nonce, digest));
    if (used !== null) {
      throw new LedgerError(ErrorCode.NonceReplayed, `nonce ${digest} was consumed in transaction ${used.TxID}`);
    }
  }

  private nonceRecord(write: Write<unknown>, digest: string, purpose: NoncePurpose, subject: string): NonceRecord {
    return {
      DocType: 'nonce',
      NonceDigest: digest,
      Purpose: purpose,
      Subject: subject,
      ConsumedAt: write.now.iso,
      ConsumedBy: callerName(write.caller),
      TxID: write.txId,
    };
  }

  /**
   * Consumes a nonce once, for every gateway and verifier: attestation nonces by verifiers (signed by
   * their verifier anchor, Subject = DeviceID), rotation nonces by key rotators (signed by the
   * metadata-signing anchor, Subject = KeyID).
   */
  @Transaction()
  @Returns('string')
  async ConsumeNonce(ctx: Context, requestJson: string, jws: string): Promise<string> {
    const write = await this.authenticate(
      ctx,
      TransactionName.ConsumeNonce,
      [Role.Operator, Role.Verifier, Role.Application, Role.Device],
      requests.consumeNonce,
      requestJson,
    );
    const { request, store, caller } = write;
    const attestation = request.Purpose === NoncePurpose.Attestation;
    if (attestation && caller.Role !== Role.Verifier) {
      throw new LedgerError(ErrorCode.AccessDenied, 'only verifiers consume attestation nonces');
    }
    if (!attestation && caller.Role === Role.Verifier) {
      throw new LedgerError(ErrorCode.AccessDenied, 'verifiers do not consume rotation nonces');
    }
    const signer = await this.verifySignature(
      write,
      jws,
      attestation ? AnchorKind.Verifier : AnchorKind.MetadataSigning,
    );
    if (attestation) {
      const device = await this.loadDevice(store, request.Subject);
      if (device.Status === DeviceStatus.Revoked) {
        throw new LedgerError(ErrorCode.DeviceRevoked, `device ${device.DeviceID} is revoked`);
      }
    } else {
      assertKeyPermission(await this.loadKey(store, request.Subject), caller, Permission.Rotate);
    }
    await this.assertNonceUnused(store, request.NonceDigest);
    const nonce = this.nonceRecord(write, request.NonceDigest, request.Purpose, request.Subject);
    return this.apply(
      ctx,
      write,
      {
        puts: [[store.key(KeyType.Nonce, nonce.NonceDigest), nonce]],
        event: {
          name: EventName.NonceConsumed,
          payload: {
            NonceDigest: nonce.NonceDigest,
            Purpose: nonce.Purpose,
            Subject: nonce.Subject,
            Signer: signer.AnchorID,
          },
        },
      },
      nonce,
    );
  }

  /**
   * Records device acknowledgements of rotations, many in one transaction (the gateway's group
   * commit). Each is a single-use digest per key version: one recorded before is answered with its
   * first transaction (`AlreadyRecorded`), not refused, so a device may repeat its acknowledgement.
   * Writes touch only the acknowledgements' own nonce keys, never a key record, so a batch does not
   * conflict with rotations of other keys; the gateway checked each version and KCV on the ledger.
   */
  @Transaction()
  @Returns('string')
  async RecordRotationAcks(ctx: Context, requestJson: string, jws: string): Promise<string> {
    const write = await this.authenticate(
      ctx,
      TransactionName.RecordRotationAcks,
      [Role.Operator],
      requests.recordRotationAcks,
      requestJson,
    );
    const { request, store } = write;
    this.assertDistinctDigests(
      request.Acks.map((ack) => ack.NonceDigest),
      'request.Acks',
    );
    const signer = await this.verifySignature(write, jws, AnchorKind.MetadataSigning);
    const puts: [string, unknown][] = [];
    const outcomes: RotationAckOutcome[] = [];
    for (const ack of request.Acks) {
      const key = store.key(KeyType.Nonce, ack.NonceDigest);
      const earlier = await store.get<NonceRecord>(key);
      if (earlier !== null && (earlier.Purpose !== NoncePurpose.Rotation || earlier.Subject !== ack.KeyID)) {
        throw new LedgerError(ErrorCode.NonceReplayed, `nonce ${ack.NonceDigest} was consumed for another purpose`);
      }
      if (earlier === null)
        puts.push([key, this.nonceRecord(write, ack.NonceDigest, NoncePurpose.Rotation, ack.KeyID)]);
      outcomes.push({ ...ack, TxID: earlier?.TxID ?? write.txId, AlreadyRecorded: earlier !== null });
    }
    return this.apply(
      ctx,
      write,
      {
        puts,
        event: {
          name: EventName.RotationAcksRecorded,
          payload: {
            Acks: outcomes.filter((o) => !o.AlreadyRecorded).map(({ KeyID, Version }) => ({ KeyID, Version })),
            Signer: signer.AnchorID,
          },
        },
      },
      { Acks: outcomes },
    );
  }

  private assertDistinctDigests(digests: readonly string[], path: string): void {
    if (new Set(digests).size !== digests.length) {
      throw new LedgerError(ErrorCode.InvalidArgument, `${path} names a nonce digest twice`);
    }
  }

  @Transaction(false)
  @Returns('string')
  async GetNonce(ctx: Context, nonceDigest: string): Promise<string> {
    this.readerOf(ctx, Overseers, TransactionName.GetNonce);
    const store = new Store(ctx.stub);
    const digest = validate(sha256HexField, nonceDigest, 'nonceDigest');
    const nonce = await store.get<NonceRecord>(store.key(KeyType.Nonce, digest));
    if (nonce === null) notFound(ErrorCode.NonceNotFound, `nonce ${digest}`);
    return canonicalJson(nonce);
  }

  // ---- attestation ------------------------------------------------------------------------------

  private assertVerifierBinding(verifierId: string, signer: TrustAnchorRecord): void {
    if (verifierId !== signer.AnchorID) {
      throw new LedgerError(
        ErrorCode.InvalidArgument,
        `VerifierID ${verifierId} is not the signing verifier anchor ${signer.AnchorID}`,
      );
    }
  }

  /**
   * After a contraindicated result: suspend the device (if active) and make its keys whose rotation policy
   * has the attestation-failure trigger due now. Returns the writes and what happened.
   */
  private async contraindicate(
    store: Store,
    device: DeviceRecord,
    summary: DeviceRecord['LastAttestation'],
    now: TxTime,
    proof: Proof,
  ): Promise<{ puts: [string, unknown][]; deletes: string[]; suspended: boolean; keysDue: string[] }> {
    const suspended = device.Status === DeviceStatus.Active;
    const updated: DeviceRecord = {
      ...device,
      Status: suspended ? DeviceStatus.Suspended : device.Status,
      StatusReason: suspended ? 'attestation contraindicated' : device.StatusReason,
      LastAttestation: summary,
      UpdatedAt: now.iso,
      Proof: proof,
    };
    const puts: [string, unknown][] = [[store.key(KeyType.Device, device.DeviceID), updated]];
    const deletes: string[] = [];
    const keysDue: string[] = [];
    const owned = await store.all<{ KeyID: string }>(KeyType.KeyByOwner, ['device', device.DeviceID]);
    for (const { KeyID } of owned) {
      const key = await this.loadKey(store, KeyID);
      const triggered = triggerOnAttestationFailure(key, now);
      if (triggered === null) continue;
      const due = this.dueIndex(key, triggered);
      puts.push([store.key(KeyType.Key, KeyID), triggered], ...due.puts);
      deletes.push(...(due.deletes ?? []));
      keysDue.push(KeyID);
    }
    return { puts, deletes, suspended, keysDue };
  }

  /**
   * Records one attestation result, signed by the verifier's anchor (VerifierID = its AnchorID), and
   * consumes its nonce. A contraindicated result suspends the device.
   */
  @Transaction()
  @Returns('string')
  async RecordAttestation(ctx: Context, requestJson: string, jws: string): Promise<string> {
    const write = await this.authenticate(
      ctx,
      TransactionName.RecordAttestation,
      [Role.Verifier],
      requests.recordAttestation,
      requestJson,
    );
    const { request, store, now } = write;
    const signer = await this.verifySignature(write, jws, AnchorKind.Verifier);
    this.assertVerifierBinding(request.VerifierID, signer);
    if (Date.parse(request.IssuedAt) > now.ms + MaxIssuedAtSkewMs) {
      throw new LedgerError(ErrorCode.InvalidArgument, `IssuedAt ${request.IssuedAt} lies in the future`);
    }
    const device = await this.loadDevice(store, request.DeviceID);
    if (device.Status === DeviceStatus.Revoked) {
      throw new LedgerError(ErrorCode.DeviceRevoked, `device ${device.DeviceID} is revoked`);
    }
    await this.assertNonceUnused(store, request.NonceDigest);
    const result: AttestationResult = {
      DeviceID: request.DeviceID,
      NonceDigest: request.NonceDigest,
      EvidenceDigest: request.EvidenceDigest,
      Status: request.Status,
      PolicyID: request.PolicyID,
      VerifierID: request.VerifierID,
      IssuedAt: request.IssuedAt,
    };
    const resultId = merkleLeafHash(result);
    const proof = this.proof(write, signer.AnchorID, jws);
    const summary = {
      ResultID: resultId,
      Status: result.Status,
      VerifierID: result.VerifierID,
      At: now.iso,
      BatchID: null,
    };
    let puts: [string, unknown][];
    let deletes: string[] = [];
    let suspended = false;
    let keysDue: string[] = [];
    if (result.Status === AttestationStatus.Contraindicated) {
      ({ puts, deletes, suspended, keysDue } = await this.contraindicate(store, device, summary, now, proof));
    } else {
      const updated: DeviceRecord = { ...device, LastAttestation: summary, UpdatedAt: now.iso, Proof: proof };
      puts = [[store.key(KeyType.Device, device.DeviceID), updated]];
    }
    const record: AttestationRecord = {
      DocType: 'attestation',
      ...result,
      ResultID: resultId,
      RecordedAt: now.iso,
      RecordedBy: callerName(write.caller),
      DeviceSuspended: suspended,
      Proof: proof,
    };
    const nonce = this.nonceRecord(write, request.NonceDigest, NoncePurpose.Attestation, request.DeviceID);
    puts.push(
      [store.key(KeyType.Attestation, record.DeviceID, resultId), record],
      [store.key(KeyType.Nonce, nonce.NonceDigest), nonce],
    );
    return this.apply(
      ctx,
      write,
      {
        puts,
        deletes,
        event: {
          name: EventName.AttestationRecorded,
          payload: {
            DeviceID: record.DeviceID,
            ResultID: resultId,
            Status: record.Status,
            VerifierID: record.VerifierID,
            DeviceSuspended: suspended,
            KeysDueForRotation: keysDue,
          },
        },
      },
      record,
    );
  }

  @Transaction(false)
  @Returns('string')
  async GetAttestation(ctx: Context, deviceId: string, resultId: string): Promise<string> {
    const caller = this.readerOf(ctx, [...Overseers, Role.Device], TransactionName.GetAttestation);
    const checkedId = argId(deviceId, 'deviceId');
    if (caller.Role === Role.Device && caller.ID !== checkedId) {
      throw new LedgerError(ErrorCode.AccessDenied, `device ${caller.ID} may only read its own attestations`);
    }
    const store = new Store(ctx.stub);
    const record = await store.get<AttestationRecord>(
      store.key(KeyType.Attestation, checkedId, validate(sha256HexField, resultId, 'resultId')),
    );
    if (record === null) notFound(ErrorCode.AttestationNotFound, `attestation ${resultId} of device ${checkedId}`);
    return canonicalJson(record);
  }

  @Transaction(false)
  @Returns('string')
  async ListAttestations(ctx: Context, deviceId: string, size: string, mark: string): Promise<string> {
    const caller = this.readerOf(ctx, [...Overseers, Role.Device], TransactionName.ListAttestations);
    const checkedId = argId(deviceId, 'deviceId');
    if (caller.Role === Role.Device && caller.ID !== checkedId) {
      throw new LedgerError(ErrorCode.AccessDenied, `device ${caller.ID} may only read its own attestations`);
    }
    const store = new Store(ctx.stub);
    return canonicalJson(
      await store.pageByPartialKey<AttestationRecord>(KeyType.Attestation, [checkedId], pageSize(size), bookmark(mark)),
    );
  }

  /**
   * Anchors a batch of results by its RFC 9162 Merkle root and consumes every member's nonce in the
   * same transaction (one replayed or revoked member refuses the whole batch, which writes nothing);
   * devices listed as Contraindicated are suspended here.
   */
  @Transaction()
  @Returns('string')
  async RecordAttestationBatch(ctx: Context, requestJson: string, jws: string): Promise<string> {
    const write = await this.authenticate(
      ctx,
      TransactionName.RecordAttestationBatch,
      [Role.Verifier],
      requests.recordAttestationBatch,
      requestJson,
    );
    const { request, store, now } = write;
    const signer = await this.verifySignature(write, jws, AnchorKind.Verifier);
    this.assertVerifierBinding(request.VerifierID, signer);
    if (request.FirstIssuedAt > request.LastIssuedAt) {
      throw new LedgerError(ErrorCode.InvalidArgument, 'FirstIssuedAt is after LastIssuedAt');
    }
    if (Date.parse(request.LastIssuedAt) > now.ms + MaxIssuedAtSkewMs) {
      throw new LedgerError(ErrorCode.InvalidArgument, `LastIssuedAt ${request.LastIssuedAt} lies in the future`);
    }
    if (request.Contraindicated.length > request.Count) {
      throw new LedgerError(ErrorCode.InvalidArgument, 'more contraindicated devices than results in the batch');
    }
    if (request.Nonces.length !== request.Count) {
      throw new LedgerError(ErrorCode.InvalidArgument, `request.Nonces must name the ${request.Count} members' nonces`);
    }
    this.assertDistinctDigests(
      request.Nonces.map((nonce) => nonce.NonceDigest),
      'request.Nonces',
    );
    if ((await store.get(store.key(KeyType.Batch, request.BatchID))) !== null) {
      throw new LedgerError(ErrorCode.BatchExists, `batch ${request.BatchID} is already recorded`);
    }
    const puts: [string, unknown][] = [];
    // Each member's nonce, as ConsumeNonce would: unused, and its device not revoked.
    for (const deviceId of new Set(request.Nonces.map((nonce) => nonce.DeviceID))) {
      const device = await this.loadDevice(store, deviceId);
      if (device.Status === DeviceStatus.Revoked) {
        throw new LedgerError(ErrorCode.DeviceRevoked, `device ${device.DeviceID} is revoked`);
      }
    }
    for (const { NonceDigest, DeviceID } of request.Nonces) {
      await this.assertNonceUnused(store, NonceDigest);
      puts.push([
        store.key(KeyType.Nonce, NonceDigest),
        this.nonceRecord(write, NonceDigest, NoncePurpose.Attestation, DeviceID),
      ]);
    }
    const proof = this.proof(write, signer.AnchorID, jws);
    const deletes: string[] = [];
    const suspended: string[] = [];
    const keysDue: string[] = [];
    for (const deviceId of request.Contraindicated) {
      const device = await this.loadDevice(store, deviceId);
      if (device.Status === DeviceStatus.Revoked) continue;
      const summary = {
        ResultID: null,
        Status: AttestationStatus.Contraindicated,
        VerifierID: request.VerifierID,
        At: now.iso,
        BatchID: request.BatchID,
      };
      const outcome = await this.contraindicate(store, device, summary, now, proof);
      puts.push(...outcome.puts);
      deletes.push(...outcome.deletes);
      if (outcome.suspended) suspended.push(deviceId);
      keysDue.push(...outcome.keysDue);
    }
    const batch: AttestationBatchRecord = {
      DocType: 'attestation-batch',
      BatchID: request.BatchID,
      VerifierID: request.VerifierID,
      MerkleRoot: request.MerkleRoot,
      Count: request.Count,
      FirstIssuedAt: request.FirstIssuedAt,
      LastIssuedAt: request.LastIssuedAt,
      Contraindicated: request.Contraindicated,
      SuspendedDevices: suspended,
      RecordedAt: now.iso,
      RecordedBy: callerName(write.caller),
      Proof: proof,
    };
    puts.push([store.key(KeyType.Batch, batch.BatchID), batch]);
    return this.apply(
      ctx,
      write,
      {
        puts,
        deletes,
        event: {
          name: EventName.AttestationBatchRecorded,
          payload: {
            BatchID: batch.BatchID,
            VerifierID: batch.VerifierID,
            MerkleRoot: batch.MerkleRoot,
            Count: batch.Count,
            SuspendedDevices: suspended,
            KeysDueForRotation: keysDue,
          },
        },
      },
      batch,
    );
  }

  @Transaction(false)
  @Returns('string')
  async GetAttestationBatch(ctx: Context, batchId: string): Promise<string> {
    this.readerOf(ctx, Overseers, TransactionName.GetAttestationBatch);
    return canonicalJson(await this.loadBatch(new Store(ctx.stub), argId(batchId, 'batchId')));
  }

  private async loadBatch(store: Store, batchId: string): Promise<AttestationBatchRecord> {
    const batch = await store.get<AttestationBatchRecord>(store.key(KeyType.Batch, batchId));
    if (batch === null) notFound(ErrorCode.BatchNotFound, `batch ${batchId}`);
    return batch;
  }

  /**
   * Proves that `resultJson` (an AttestationResult) is a member of a recorded batch, given the inclusion
   * proof `{"LeafIndex":n,"AuditPath":[hex,…]}`. Answers with the leaf hash, or PROOF_INVALID.
   */
  @Transaction(false)
  @Returns('string')
  async VerifyAttestationInclusion(
    ctx: Context,
    batchId: string,
    resultJson: string,
    proofJson: string,
  ): Promise<string> {
    this.readerOf(ctx, Overseers, TransactionName.VerifyAttestationInclusion);
    const batch = await this.loadBatch(new Store(ctx.stub), argId(batchId, 'batchId'));
    const result = validate(requests.attestationResult, parseJson(resultJson, 'result', Limits.RequestBytes), 'result');
    const proof = validate(requests.inclusionProof, parseJson(proofJson, 'proof', Limits.ProofBytes), 'proof');
    if (result.VerifierID !== batch.VerifierID) {
      throw new LedgerError(ErrorCode.ProofInvalid, `result was not issued by the batch verifier ${batch.VerifierID}`);
    }
    if (result.IssuedAt < batch.FirstIssuedAt || result.IssuedAt > batch.LastIssuedAt) {
      throw new LedgerError(ErrorCode.ProofInvalid, 'result IssuedAt lies outside the batch range');
    }
    const leafHash = merkleLeafHash(result);
    const included = verifyInclusionProof({
      leafHash,
      leafIndex: proof.LeafIndex,
      treeSize: batch.Count,
      auditPath: proof.AuditPath,
      root: batch.MerkleRoot,
    });
    if (!included) {
      throw new LedgerError(ErrorCode.ProofInvalid, `result is not leaf ${proof.LeafIndex} of batch ${batch.BatchID}`);
    }
    return canonicalJson({
      BatchID: batch.BatchID,
      Included: true,
      LeafHash: leafHash,
      LeafIndex: proof.LeafIndex,
      MerkleRoot: batch.MerkleRoot,
    });
  }

  // ---- reference values -------------------------------------------------------------------------

  @Transaction()
  @Returns('string')
  async SetReferenceValues(ctx: Context, requestJson: string, jws: string): Promise<string> {
    const write = await this.authenticate(
      ctx,
      TransactionName.SetReferenceValues,
      [Role.Operator],
      requests.setReferenceValues,
      requestJson,
    );
    const { request, store } = write;
    const signer = await this.verifySignature(write, jws, AnchorKind.MetadataSigning);
    const names = new Set(request.Measurements.map((measurement) => measurement.Name));
    if (names.size !== request.Measurements.length) {
      throw new LedgerError(ErrorCode.InvalidArgument, 'request.Measurements repeats a measurement name');
    }
    const key = store.key(KeyType.ReferenceValues, request.Group);
    const previous = await store.get<ReferenceValuesRecord>(key);
    const record: ReferenceValuesRecord = {
      DocType: 'reference-values',
      Group: request.Group,
      Revision: (previous?.Revision ?? 0) + 1,
      PolicyID: request.PolicyID,
      Measurements: request.Measurements,
      UpdatedAt: write.now.iso,
      UpdatedBy: callerName(write.caller),
      Proof: this.proof(write, signer.AnchorID, jws),
    };
    return this.apply(
      ctx,
      write,
      {
        puts: [[key, record]],
        event: {
          name: EventName.ReferenceValuesSet,
          payload: { Group: record.Group, Revision: record.Revision, PolicyID: record.PolicyID },
        },
      },
      record,
    );
  }

  @Transaction(false)
  @Returns('string')
  async GetReferenceValues(ctx: Context, group: string): Promise<string> {
    this.readerOf(ctx, Overseers, TransactionName.GetReferenceValues);
    const store = new Store(ctx.stub);
    const record = await store.get<ReferenceValuesRecord>(store.key(KeyType.ReferenceValues, argId(group, 'group')));
    if (record === null) notFound(ErrorCode.ReferenceValuesNotFound, `reference values of group ${group}`);
    return canonicalJson(record);
  }

  // ---- the shard map (governance channel; rules in protocol/src/shard-map.ts) ---------------------

  @Transaction()
  @Returns('string')
  async SetShardMap(ctx: Context, requestJson: string, jws: string): Promise<string> {
    const write = await this.authenticate(ctx, TransactionName.SetShardMap, [Role.Operator], setShardMap, requestJson);
    const { request, store } = write;
    const signer = await this.verifySignature(write, jws, AnchorKind.MetadataSigning);
    assertShardMapConsistent(request);
    const key = store.key(KeyType.ShardMap);
    const revision = (await store.get<ShardMapRecord>(key))?.Revision ?? 0;
    if (request.ExpectedRevision !== revision) {
      throw new LedgerError(
        ErrorCode.StaleVersion,
        `the shard map is at revision ${String(revision)}, not ${String(request.ExpectedRevision)}`,
      );
    }
    const record: ShardMapRecord = {
      DocType: 'shard-map',
      Revision: revision + 1,
      Shards: request.Shards,
      Rules: request.Rules,
      Default: request.Default,
      UpdatedAt: write.now.iso,
      UpdatedBy: callerName(write.caller),
      Proof: this.proof(write, signer.AnchorID, jws),
    };
    const payload = { Revision: record.Revision, Shards: record.Shards, Default: record.Default };
    return this.apply(
      ctx,
      write,
      { puts: [[key, record]], event: { name: EventName.ShardMapChanged, payload } },
      record,
    );
  }

  @Transaction(false)
  @Returns('string')
  async GetShardMap(ctx: Context): Promise<string> {
    this.readerOf(ctx, AllRoles, TransactionName.GetShardMap);
    return canonicalJson(await this.shardMap(ctx));
  }

  /** The shard of a device with this metadata (`''`: the device has none of that field). */
  @Transaction(false)
  @Returns('string')
  async ResolveShard(ctx: Context, group: string, location: string, fn: string): Promise<string> {
    this.readerOf(ctx, AllRoles, TransactionName.ResolveShard);
    const field = (value: string, name: string) => (value === '' ? null : argId(value, name));
    const subject = {
      Group: field(group, 'group'),
      Location: field(location, 'location'),
      Function: field(fn, 'function'),
    };
    return canonicalJson(resolveShard(await this.shardMap(ctx), subject));
  }

  /**
   * How many devices and keys this channel (a shard) holds, for `keyfleet shards`. A scan of the
   * channel's device and key records: its cost grows with the shard, so it is an operator's read.
   */
  @Transaction(false)
  @Returns('string')
  async GetShardLoad(ctx: Context): Promise<string> {
    this.readerOf(ctx, Overseers, TransactionName.GetShardLoad);
    const store = new Store(ctx.stub);
    // Records a move left behind (a departed device's history stays here) are not this shard's load.
    const departed = await departedRecords(store);
    const load: ShardLoadRecord = {
      Devices: (await store.count(KeyType.Device)) - departed.devices,
      Keys: (await store.count(KeyType.Key)) - departed.keys,
    };
    return canonicalJson(load);
  }

  private async shardMap(ctx: Context): Promise<ShardMapRecord> {
    const store = new Store(ctx.stub);
    const record = await store.get<ShardMapRecord>(store.key(KeyType.ShardMap));
    if (record === null) notFound(ErrorCode.ShardMapNotFound, 'the shard map');
    return record;
  }
}
