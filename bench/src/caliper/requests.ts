import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CompactSign, exportJWK, generateKeyPair, importJWK, type JWK, type KeyLike } from 'jose';
import {
  canonicalBytes,
  merkleLeafHash,
  merkleRoot,
  nextKeyCommitment,
  sha256Hex,
  TransactionName,
  type EnrolDeviceRequest,
  type PublicJwk,
  type RecordAttestationBatchRequest,
  type RegisterKeyRequest,
  type RegisterTrustAnchorRequest,
  type RequestPrincipal,
  type RotateKeyRequest,
} from '@keyfleet/protocol';

/**
 * Signed write requests for keyfleet's chaincode, built the way keyfleet's gateway and verifier
 * build them (docs/ledger.md): canonical JSON, and an ES256 compact JWS over it whose `kid` is a
 * trust anchor registered on the ledger. In the Caliper workload the anchors' keys are software
 * keys made for the run (`prepare.ts`), not the HSM's: Caliper measures the ledger, not SoftHSM.
 */

/** A trust anchor's key pair as the workload keeps it (private JWK in a git-ignored file). */
export interface AnchorKey {
  readonly anchorId: string;
  readonly privateJwk: JWK;
}

/** The file `prepare.ts` writes and every Caliper worker reads. */
export interface AnchorKeys {
  readonly metadata: AnchorKey;
  readonly verifier: AnchorKey;
}

export interface SignedRequest {
  readonly requestJson: string;
  readonly jws: string;
}

export class RequestSigner {
  private constructor(
    readonly anchorId: string,
    private readonly key: KeyLike | Uint8Array,
  ) {}

  static async from(anchor: AnchorKey): Promise<RequestSigner> {
    return new RequestSigner(anchor.anchorId, await importJWK(anchor.privateJwk, 'ES256'));
  }

  async sign(request: Record<string, unknown>): Promise<SignedRequest> {
    const payload = canonicalBytes(request);
    const jws = await new CompactSign(payload).setProtectedHeader({ alg: 'ES256', kid: this.anchorId }).sign(this.key);
    return { requestJson: Buffer.from(payload).toString('utf8'), jws };
  }
}

export async function newAnchorKey(anchorId: string): Promise<{ anchor: AnchorKey; publicJwk: PublicJwk }> {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  if (typeof jwk.x !== 'string' || typeof jwk.y !== 'string') throw new Error('no EC point in the JWK');
  return { anchor: { anchorId, privateJwk: jwk }, publicJwk: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y } };
}

export function readAnchorKeys(path: string): AnchorKeys {
  return JSON.parse(readFileSync(path, 'utf8')) as AnchorKeys;
}

/** A fresh SHA-256 digest: a single-use nonce, as the gateway's nonces are (random, 32 bytes). */
export function freshDigest(): string {
  return sha256Hex(randomBytes(32));
}

const envelope = <A extends TransactionName>(action: A, requestId: string, principal: RequestPrincipal) => ({
  Action: action,
  RequestID: requestId,
  Principal: principal,
});

const operatorPrincipal: RequestPrincipal = { Kind: 'operator', ID: 'caliper' };
const devicePrincipal = (deviceId: string): RequestPrincipal => ({ Kind: 'device', ID: deviceId });

/**
 * A trust anchor registered with proof of possession (the JWS is made by the key registered): the
 * metadata-signing bootstrap by Org1's operator, the verifier's own anchor by Org2's verifier.
 */
export function registerTrustAnchor(
  requestId: string,
  anchorId: string,
  kind: 'metadata-signing' | 'verifier',
  publicKey: PublicJwk,
): RegisterTrustAnchorRequest & Record<string, unknown> {
  const service = kind === 'verifier' ? 'verifier.anchors' : 'gateway.anchors';
  return {
    ...envelope(TransactionName.RegisterTrustAnchor, requestId, { Kind: 'service', ID: service }),
    AnchorID: anchorId,
    Kind: kind,
    PublicKey: publicKey,
    Description: `${kind} key of the Caliper workload (software, made for this run)`,
  };
}

/** An enrolment as the gateway writes it: the enrolment token's nonce consumed with it. */
export function enrolDevice(
  requestId: string,
  deviceId: string,
  shard = 0,
): EnrolDeviceRequest & Record<string, unknown> {
  return {
    ...envelope(TransactionName.EnrolDevice, requestId, operatorPrincipal),
    DeviceID: deviceId,
    Group: 'caliper-fleet',
    Location: 'bench/caliper',
    Function: 'load generator device',
    Shard: shard,
    CertFingerprint: sha256Hex(Buffer.from(`cert:${deviceId}`)),
    EnrolmentNonceDigest: freshDigest(),
  };
}

/** Version n's fingerprint (a KCV in the gateway; here a digest of the key id and version). */
export const fingerprintOf = (keyId: string, version: number): string =>
  sha256Hex(Buffer.from(`kcv:${keyId}:${version}`)).slice(0, 16);

const versionFields = (keyId: string, version: number) => ({
  Fingerprint: fingerprintOf(keyId, version),
  FingerprintType: 'kcv' as const,
  Pkcs11URI: `pkcs11:token=keyfleet;object=${keyId}-v${version};type=secret-key`,
  WrappedKeyDigest: null,
});

/**
 * A device's data key as the gateway provisions it (gateway/src/rotation/service.ts): owned by the
 * device, which reads and uses it, rotated and administered by operators, with a commitment to
 * version 2 (pre-rotation).
 */
export function registerKey(
  requestId: string,
  keyId: string,
  deviceId: string,
): RegisterKeyRequest & Record<string, unknown> {
  const device = { MSPID: 'Org1MSP', Role: 'device' as const, ID: deviceId };
  const operator = { MSPID: 'Org1MSP', Role: 'operator' as const, ID: null };
  return {
    ...envelope(TransactionName.RegisterKey, requestId, operatorPrincipal),
    KeyID: keyId,
    Owner: { Type: 'device', ID: deviceId },
    Algorithm: 'AES-256',
    Purpose: 'encrypt',
    RotationPolicy: { IntervalSeconds: 86_400, GraceSeconds: 3_600, RetentionSeconds: 7 * 86_400, Triggers: [] },
    AccessPolicy: { Read: [device], Use: [device], Rotate: [operator], Administer: [operator] },
    InitialVersion: versionFields(keyId, 1),
    InitialState: 'active',
    NextKeyCommitment: nextKeyCommitment(fingerprintOf(keyId, 2)),
  };
}

/**
 * Rotation `current` → `current + 1` as the gateway writes it for a device's request: the new
 * version matches the commitment made with the previous one, commits to the next, and consumes the
 * device's request nonce in the same transaction.
 */
export function rotateKey(
  requestId: string,
  keyId: string,
  deviceId: string,
  current: number,
): RotateKeyRequest & Record<string, unknown> {
  return {
    ...envelope(TransactionName.RotateKey, requestId, devicePrincipal(deviceId)),
    KeyID: keyId,
    CurrentVersion: current,
    NewVersion: versionFields(keyId, current + 1),
    NextKeyCommitment: nextKeyCommitment(fingerprintOf(keyId, current + 2)),
    NonceDigest: freshDigest(),
  };
}

/**
 * A batch of `members` attestation results as the verifier's batcher anchors it: the Merkle root
 * of the results' leaves and every member's nonce, consumed by this transaction. The results are
 * made up here (affirming, over the given devices in turn); the chaincode checks the nonces and
 * devices, not the leaves, which only the verifier holds.
 */
export function recordAttestationBatch(
  requestId: string,
  batchId: string,
  verifierId: string,
  deviceIds: readonly string[],
  members: number,
): RecordAttestationBatchRequest & Record<string, unknown> {
  const issuedAt = new Date().toISOString();
  const nonces = Array.from({ length: members }, (_, i) => ({
    NonceDigest: freshDigest(),
    DeviceID: deviceIds[i % deviceIds.length] as string,
  }));
  const leaves = nonces.map((nonce) =>
    merkleLeafHash({
      DeviceID: nonce.DeviceID,
      NonceDigest: nonce.NonceDigest,
      Status: 'affirming',
      IssuedAt: issuedAt,
    }),
  );
  return {
    ...envelope(TransactionName.RecordAttestationBatch, requestId, { Kind: 'service', ID: 'verifier.batcher' }),
    BatchID: batchId,
    VerifierID: verifierId,
    MerkleRoot: merkleRoot(leaves),
    Count: members,
    FirstIssuedAt: issuedAt,
    LastIssuedAt: issuedAt,
    Contraindicated: [],
    Nonces: nonces,
  };
}
