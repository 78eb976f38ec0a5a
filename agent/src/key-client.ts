/**
 * The application's key client (docs/key-service.md §7): fetches a key's ledger record from the
 * gateway and believes it only after checking the HSM metadata-signing JWS against a pinned key —
 * the record's own proof and every version's — and that the signed requests say what the record
 * says (KeyID, owner, algorithm, each version's fingerprint, the next-key commitment, the policy).
 * The gateway is not trusted: a record it altered fails here.
 */
import { isId } from '@keyfleet/protocol';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { compactVerify } from 'jose';

import { AgentError } from './errors.js';
import { HttpError, newHttpClient } from './http/client.js';
import type { TlsTrust } from './http/tls.js';

/** The key client's coded errors; callers switch on `code`. */
export const KeyClientErrorCode = {
  InvalidArgument: 'KEY_CLIENT_INVALID_ARGUMENT',
  /** The gateway answered an error; `detail` carries its code. */
  GatewayRejected: 'KEY_CLIENT_GATEWAY_REJECTED',
  /** The gateway could not be reached or answered something that is not `{record, signature}`. */
  GatewayUnavailable: 'KEY_CLIENT_GATEWAY_UNAVAILABLE',
  /** A JWS does not verify with the pinned metadata-signing key (ES256 only). */
  SignatureInvalid: 'KEY_CLIENT_SIGNATURE_INVALID',
  /** Well signed, but the record says something the signed requests do not. */
  RecordMismatch: 'KEY_CLIENT_RECORD_MISMATCH',
} as const;
export type KeyClientErrorCode = (typeof KeyClientErrorCode)[keyof typeof KeyClientErrorCode];

/** A refusal of the key client: an {@link AgentError} with one of the {@link KeyClientErrorCode}s. */
export class KeyClientError extends AgentError {
  override readonly name: string = 'KeyClientError';
  declare readonly code: KeyClientErrorCode;
}

export interface KeyClientOptions {
  /** e.g. `https://gateway.example:8443` */
  readonly gatewayUrl: string;
  /** A fresh bearer token (the JWT alone, or with its `Bearer ` prefix). */
  readonly bearer: () => Promise<string>;
  /** The pinned metadata-signing trust anchor: SPKI PEM or a KeyObject. */
  readonly metadataSigningPublicKey: string | KeyObject;
  /** The operator's CA certificate the gateway's certificate chains to (KEYFLEET_CA_FILE). */
  readonly tls?: TlsTrust;
  /** A stand-in transport (tests); default a fetch that trusts `tls`. */
  readonly fetch?: typeof fetch;
}

/** One version as the ledger records it (the fields the client relies on). */
export interface VerifiedKeyVersion {
  readonly version: number;
  readonly state: string;
  readonly fingerprint: string;
  readonly fingerprintType: string;
}

export interface VerifiedKey {
  readonly keyId: string;
  readonly owner: { readonly type: string; readonly id: string };
  readonly algorithm: string;
  readonly purpose: string;
  readonly activeVersion: number | null;
  readonly latestVersion: number;
  readonly versions: readonly VerifiedKeyVersion[];
  /** The transaction whose signed request the record's proof carries, and its action. */
  readonly transactionId: string;
  readonly lastAction: string;
  /** The record as received, verified as above. */
  readonly record: Readonly<Record<string, unknown>>;
}

export interface KeyClient {
  /** `GET /v1/keys/:id`, verified. @throws KeyClientError */
  getKey(keyId: string): Promise<VerifiedKey>;
}

const keyActions = new Set([
  'RegisterKey',
  'ActivateKey',
  'RotateKey',
  'DeactivateKey',
  'MarkKeyCompromised',
  'DestroyKeyVersion',
  'SetAccessPolicy',
  'SetRotationPolicy',
]);

type Json = Record<string, unknown>;

/** The one place a KeyClientError is made, so its code is always a {@link KeyClientErrorCode}. */
function fail(code: KeyClientErrorCode, message: string, detail?: string): never {
  throw new KeyClientError(code, message, detail);
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Structural equality of JSON values, key order ignored. */
function sameJson(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => k in b && sameJson(a[k], b[k]));
  }
  return a === b;
}

export function newKeyClient(options: KeyClientOptions): KeyClient {
  const pinned =
    typeof options.metadataSigningPublicKey === 'string'
      ? createPublicKey(options.metadataSigningPublicKey)
      : options.metadataSigningPublicKey;
  if (pinned.asymmetricKeyType !== 'ec' || pinned.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    fail(KeyClientErrorCode.InvalidArgument, 'the pinned metadata-signing key must be a P-256 public key');
  }
  const client = newHttpClient({
    baseUrl: options.gatewayUrl,
    serviceName: 'gateway',
    ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
    ...(options.tls === undefined ? {} : { tls: options.tls }),
  });

  /** The request a proof's JWS signed, verified with the pinned key. */
  async function signedRequest(proof: unknown, what: string): Promise<{ payload: Json; txId: string }> {
    if (!isObject(proof) || typeof proof.JWS !== 'string' || typeof proof.TxID !== 'string') {
      fail(KeyClientErrorCode.RecordMismatch, `${what} has no proof`);
    }
    let bytes: Uint8Array;
    try {
      ({ payload: bytes } = await compactVerify(proof.JWS, pinned, { algorithms: ['ES256'] }));
    } catch {
      fail(KeyClientErrorCode.SignatureInvalid, `the proof of ${what} does not verify with the pinned key`);
    }
    const payload: unknown = JSON.parse(Buffer.from(bytes).toString('utf8'));
    if (!isObject(payload)) fail(KeyClientErrorCode.RecordMismatch, `the proof of ${what} signs no request`);
    return { payload, txId: proof.TxID };
  }

  return {
    async getKey(keyId) {
      if (!isId(keyId)) {
        fail(KeyClientErrorCode.InvalidArgument, `${keyId} is not a KeyID`);
      }
      const token = (await options.bearer()).replace(/^Bearer /, '');
      let body: unknown;
      try {
        body = await client.request('GET', `/v1/keys/${encodeURIComponent(keyId)}`, undefined, {
          authorization: `Bearer ${token}`,
        });
      } catch (err) {
        if (err instanceof HttpError && err.answered) {
          fail(KeyClientErrorCode.GatewayRejected, `the gateway refused: ${err.code}`, err.code);
        }
        fail(KeyClientErrorCode.GatewayUnavailable, 'the gateway did not answer with JSON');
      }
      if (!isObject(body) || !isObject(body.record) || typeof body.signature !== 'string') {
        fail(KeyClientErrorCode.GatewayUnavailable, 'the answer is not {record, signature}');
      }
      const record = body.record;
      if (!isObject(record.Proof) || record.Proof.JWS !== body.signature) {
        fail(KeyClientErrorCode.RecordMismatch, 'the signature is not the record proof');
      }
      const top = await signedRequest(record.Proof, `key ${keyId}`);
      if (record.KeyID !== keyId || top.payload.KeyID !== keyId) {
        fail(KeyClientErrorCode.RecordMismatch, `the record or its signed request is not about key ${keyId}`);
      }
      const action = top.payload.Action;
      if (typeof action !== 'string' || !keyActions.has(action)) {
        fail(KeyClientErrorCode.RecordMismatch, 'the record proof signs no key transaction');
      }
      if (!Array.isArray(record.Versions) || typeof record.LatestVersion !== 'number') {
        fail(KeyClientErrorCode.RecordMismatch, 'the record has no versions');
      }
      const versions = record.Versions as unknown[];
      const out: VerifiedKeyVersion[] = [];
      // Every version carries the proof of the write that created it: that write names its fingerprint.
      for (const [index, value] of versions.entries()) {
        if (!isObject(value) || value.Version !== index + 1 || typeof value.Fingerprint !== 'string') {
          fail(KeyClientErrorCode.RecordMismatch, `version ${index + 1} is malformed`);
        }
        const made = await signedRequest(value.Proof, `version ${index + 1}`);
        const p = made.payload;
        const signedVersion =
          index === 0 && p.Action === 'RegisterKey' && isObject(p.InitialVersion)
            ? p.InitialVersion
            : p.Action === 'RotateKey' && p.CurrentVersion === index && isObject(p.NewVersion)
              ? p.NewVersion
              : null;
        if (
          p.KeyID !== keyId ||
          signedVersion === null ||
          signedVersion.Fingerprint !== value.Fingerprint ||
          signedVersion.FingerprintType !== value.FingerprintType ||
          signedVersion.Pkcs11URI !== value.Pkcs11URI
        ) {
          fail(KeyClientErrorCode.RecordMismatch, `version ${index + 1} is not the version its signed request made`);
        }
        if (index === 0) {
          for (const field of ['Owner', 'Algorithm', 'Purpose'] as const) {
            if (!sameJson(p[field], record[field])) {
              fail(KeyClientErrorCode.RecordMismatch, `${field} is not what RegisterKey signed`);
            }
          }
        }
        out.push({
          version: index + 1,
          state: String(value.State),
          fingerprint: value.Fingerprint,
          fingerprintType: String(value.FingerprintType),
        });
      }
      if (out.length !== record.LatestVersion)
        fail(KeyClientErrorCode.RecordMismatch, 'LatestVersion is not the last version');
      // What the last write signed must still be what the record says.
      const versionOf = (n: unknown) => out.find((v) => v.version === n);
      const stateIs = (n: unknown, states: readonly string[]) => states.includes(versionOf(n)?.state ?? '');
      const p = top.payload;
      const consistent =
        (action === 'RotateKey' && record.LatestVersion === Number(p.CurrentVersion) + 1
          ? sameJson(p.NextKeyCommitment, record.NextKeyCommitment)
          : true) &&
        (action === 'SetAccessPolicy' ? sameJson(p.AccessPolicy, record.AccessPolicy) : true) &&
        (action === 'SetRotationPolicy' ? sameJson(p.RotationPolicy, record.RotationPolicy) : true) &&
        (action === 'DestroyKeyVersion' ? stateIs(p.Version, ['destroyed']) : true) &&
        (action === 'DeactivateKey' ? stateIs(p.Version, ['deactivated']) : true) &&
        (action === 'MarkKeyCompromised' && p.Version !== null ? stateIs(p.Version, ['compromised']) : true) &&
        (action === 'RegisterKey' && record.LatestVersion === 1
          ? sameJson(p.AccessPolicy, record.AccessPolicy) && sameJson(p.NextKeyCommitment, record.NextKeyCommitment)
          : true);
      if (!consistent) fail(KeyClientErrorCode.RecordMismatch, `the record is not what ${action} signed`);
      const owner = isObject(record.Owner) ? record.Owner : {};
      return {
        keyId,
        owner: { type: String(owner.Type), id: String(owner.ID) },
        algorithm: String(record.Algorithm),
        purpose: String(record.Purpose),
        activeVersion: typeof record.ActiveVersion === 'number' ? record.ActiveVersion : null,
        latestVersion: record.LatestVersion,
        versions: out,
        transactionId: top.txId,
        lastAction: action,
        record,
      };
    },
  };
}
