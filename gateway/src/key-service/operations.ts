/**
 * The application key service (docs/key-service.md): encrypt, decrypt, sign and verify inside the
 * HSM by Key ID, and export a public key wrapped for a device. Every call reads the key's ledger
 * record (GetKey) and decides with it — access policy, purpose, version state — before the HSM
 * is touched; nothing is cached, so a policy change, a rotation or a compromise counts from the
 * next call. The service writes nothing: the ledger records key lifecycle, not each use.
 */
import { ledgerPort, ledgerRefusalCode, type Ledger } from '../ledger/port';
import {
  type DeviceRecord,
  ErrorCode,
  KekIv,
  type KeyRecord,
  type KeyVersion,
  labelledDigest,
  sha256Hex,
} from '@keyfleet/protocol';
import { createHash, randomUUID, verify as verifySignature, X509Certificate, type KeyObject } from 'node:crypto';
import type { Principal } from '../auth/bearer';
import { GatewayError, GatewayErrorCode } from '../errors';
import { isHsmError, parsePkcs11Uri, type Hsm, type KeyRef } from '../hsm';
import type { LedgerClient } from '../ledger/ledger-client';
import { hsmFailure as asHsmFailure } from '../key-versions/engine';
import { withDeviceMasterKey } from '../rotation/device-wrap';
import { authorizeUse, KeyUse } from './access';
import { encodeHeader, envelopeAad, formatEnvelope, parseEnvelope } from './envelope';
import { fail, KeyServiceErrorDetail } from './errors';

export interface KeyOperationsOptions {
  readonly hsm: Hsm;
  /** Reads as the gateway's operator identity (which reads every key); policies are applied here. */
  readonly ledger: LedgerClient;
  /** Label of the HSM ECDH key device master keys derive from; default `device-kex`. */
  readonly deviceKeyExchangeLabel?: string;
  readonly now?: () => Date;
  /**
   * The status for which the ledger's events already refuse a device (events/): an export to it
   * is refused before the device is read from the ledger. Other devices are checked there.
   */
  readonly deviceRefusal?: (deviceId: string) => 'suspended' | 'revoked' | undefined;
}

export interface EncryptResult {
  /** The envelope (JWE compact, docs/key-service.md §2). */
  readonly ciphertext: string;
  readonly keyId: string;
  readonly version: number;
}

export interface DecryptResult {
  readonly plaintext: Uint8Array;
  readonly keyId: string;
  readonly version: number;
  /** The version's state: `compromised` only when the caller allowed it. */
  readonly state: string;
}

/** Options of the process operations (decrypt, verify). */
export interface ProcessOptions {
  /**
   * Accept a compromised version (KMIP: processing only, to recover data protected before the
   * compromise). Without it a compromised version is refused with KEY_COMPROMISED.
   */
  readonly allowCompromised?: boolean;
}

export interface SignResult {
  /** ECDSA P-256 over SHA-256(data), DER (RFC 3279 §2.2.3), low S. */
  readonly signature: Uint8Array;
  readonly keyId: string;
  readonly version: number;
}

export interface VerifyResult {
  /** False for a signature that does not verify; refusals (policy, state) are errors instead. */
  readonly valid: boolean;
  readonly keyId: string;
  readonly version: number;
  /** The version's state: `compromised` only when the caller allowed it. */
  readonly state: string;
}

/** The device that is to receive a public key: its id and the certificate it was enrolled with. */
export interface ReceivingDevice {
  readonly deviceId: string;
  /** PEM; SHA-256 of its DER must be the ledger's `CertFingerprint` for the device. */
  readonly certificatePem: string;
}

export interface ExportedPublicKey {
  readonly keyId: string;
  readonly version: number;
  readonly deviceId: string;
  /** The ledger Fingerprint (SHA-256 of the SPKI DER, hex) the device checks after opening. */
  readonly fingerprint: string;
  /** JWE compact (`dir`, A256GCM) of the SPKI DER under the export KEK of (device, key, version). */
  readonly wrapped: string;
}

/** Each method is one HTTP route (docs/key-service.md §5). */
export interface KeyOperations {
  /** AES-256-GCM with the active version; `aad` is bound in addition to KeyID and version. */
  encrypt(by: Principal, keyId: string, plaintext: Uint8Array, aad?: Uint8Array): Promise<EncryptResult>;
  /** With the version the envelope names, if it is active or deactivated (or compromised, if allowed). */
  decrypt(by: Principal, ciphertext: string, aad?: Uint8Array, options?: ProcessOptions): Promise<DecryptResult>;
  /** ECDSA P-256 with the active version. */
  sign(by: Principal, keyId: string, data: Uint8Array): Promise<SignResult>;
  /** With `version`, or the active version; any active or deactivated version verifies. */
  verify(
    by: Principal,
    keyId: string,
    data: Uint8Array,
    signature: Uint8Array,
    version?: number,
    options?: ProcessOptions,
  ): Promise<VerifyResult>;
  /** The key version's public key, encrypted for one enrolled, active device. */
  exportPublicKey(
    by: Principal,
    keyId: string,
    forDevice: ReceivingDevice,
    version?: number,
  ): Promise<ExportedPublicKey>;
}

/** Domain label of the export KEK's derivation input (cf. `keyfleet/rotation-kek/v1`). */
export const ExportKekLabel = 'keyfleet/export-kek/v1';

/** The 32-byte CKM_AES_CBC_ENCRYPT_DATA input binding an export KEK to (device, key, version). */
export function exportKekDerivationData(deviceId: string, keyId: string, version: number): Buffer {
  return labelledDigest(ExportKekLabel, deviceId, keyId, String(version));
}

export function newKeyOperations(options: KeyOperationsOptions): KeyOperations {
  const { hsm } = options;
  const ledger = ledgerPort(options.ledger);
  const kexLabel = options.deviceKeyExchangeLabel ?? 'device-kex';
  const now = options.now ?? (() => new Date());

  async function readKey(keyId: string): Promise<KeyRecord> {
    let key: KeyRecord | null;
    try {
      key = await ledger.keys.get(keyId);
    } catch (err) {
      if (ledgerRefusalCode(err) === ErrorCode.InvalidArgument) {
        fail(GatewayErrorCode.NotFound, KeyServiceErrorDetail.KeyNotFound, `${keyId} is not a KeyID`, err);
      }
      throw err;
    }
    if (key === null) fail(GatewayErrorCode.NotFound, KeyServiceErrorDetail.KeyNotFound, `key ${keyId} does not exist`);
    return key;
  }

  /** The HSM object the ledger names (CKA_ID from its Pkcs11URI), never just a label lookalike. */
  function objectOf(key: KeyRecord, version: KeyVersion): KeyRef {
    let id: Uint8Array | undefined;
    let token: string | undefined;
    try {
      ({ id, token } = parsePkcs11Uri(version.Pkcs11URI));
    } catch {
      id = undefined;
    }
    if (id === undefined || (token !== undefined && token !== hsm.tokenLabel)) {
      fail(
        GatewayErrorCode.HsmFailure,
        KeyServiceErrorDetail.KeyMaterialMissing,
        `key ${key.KeyID} version ${version.Version} is not on token ${hsm.tokenLabel}`,
      );
    }
    return { id };
  }

  function hsmFailure(key: KeyRecord, version: KeyVersion, err: unknown): never {
    // HsmErrors are GatewayErrors too: they are told apart first, the others pass as they are.
    if (!isHsmError(err) && err instanceof GatewayError) throw err;
    if (isHsmError(err) && err.code === 'HSM_KEY_NOT_FOUND') {
      fail(
        GatewayErrorCode.HsmFailure,
        KeyServiceErrorDetail.KeyMaterialMissing,
        `key ${key.KeyID} version ${version.Version} is not in the HSM`,
        err,
      );
    }
    throw asHsmFailure(err);
  }

  /** The version's public key from the HSM, checked against the ledger's SPKI fingerprint. */
  async function publicKeyOf(key: KeyRecord, version: KeyVersion): Promise<{ keyObject: KeyObject; spki: Buffer }> {
    let found: { keyObject: KeyObject; spki: Uint8Array };
    try {
      found = await hsm.getPublicKey(objectOf(key, version));
    } catch (err) {
      hsmFailure(key, version, err);
    }
    const spki = Buffer.from(found.spki);
    if (version.FingerprintType !== 'spki-sha256' || sha256Hex(spki) !== version.Fingerprint) {
      fail(
        GatewayErrorCode.HsmFailure,
        KeyServiceErrorDetail.KeyMaterialMissing,
        `the HSM's public key of ${key.KeyID} version ${version.Version} is not the ledger's`,
      );
    }
    return { keyObject: found.keyObject, spki };
  }

  return {
    async encrypt(by, keyId, plaintext, aad) {
      const key = await readKey(keyId);
      const version = authorizeUse(by, key, KeyUse.Encrypt);
      const header = encodeHeader(key.KeyID, version.Version);
      let sealed: { iv: Uint8Array; ciphertext: Uint8Array };
      try {
        sealed = await hsm.encryptAesGcm(objectOf(key, version), plaintext, envelopeAad(header, aad));
      } catch (err) {
        hsmFailure(key, version, err);
      }
      // CKM_AES_GCM appends the 128-bit tag; JWE carries it as its own part.
      const body = sealed.ciphertext;
      const tagAt = body.length - 16;
      return {
        ciphertext: formatEnvelope(header, sealed.iv, body.subarray(0, tagAt), body.subarray(tagAt)),
        keyId: key.KeyID,
        version: version.Version,
      };
    },

    async decrypt(by, ciphertext, aad, processOptions = {}) {
      const envelope = parseEnvelope(ciphertext);
      if (typeof envelope === 'string') {
        fail(GatewayErrorCode.BadRequest, KeyServiceErrorDetail.CiphertextMalformed, envelope);
      }
      const key = await readKey(envelope.header.kid);
      const version = authorizeUse(by, key, KeyUse.Decrypt, envelope.header.ver, processOptions);
      try {
        const plaintext = await hsm.decryptAesGcm(
          objectOf(key, version),
          { iv: envelope.iv, ciphertext: Buffer.concat([envelope.ciphertext, envelope.tag]) },
          envelopeAad(envelope.protectedHeader, aad),
        );
        return { plaintext, keyId: key.KeyID, version: version.Version, state: version.State };
      } catch (err) {
        if (isHsmError(err) && err.code === 'HSM_INTEGRITY_FAILED') {
          fail(
            GatewayErrorCode.BadRequest,
            KeyServiceErrorDetail.CiphertextInvalid,
            'the ciphertext does not authenticate under its key version and AAD',
            err,
          );
        }
        hsmFailure(key, version, err);
      }
    },

    async sign(by, keyId, data) {
      const key = await readKey(keyId);
      const version = authorizeUse(by, key, KeyUse.Sign);
      try {
        const digest = createHash('sha256').update(data).digest();
        const signature = await hsm.signDigest(objectOf(key, version), digest, 'der');
        return { signature, keyId: key.KeyID, version: version.Version };
      } catch (err) {
        hsmFailure(key, version, err);
      }
    },

    async verify(by, keyId, data, signature, wanted, processOptions = {}) {
      const key = await readKey(keyId);
      const version = authorizeUse(by, key, KeyUse.Verify, wanted ?? null, processOptions);
      const { keyObject } = await publicKeyOf(key, version);
      let valid: boolean;
      try {
        valid = verifySignature('sha256', data, { key: keyObject, dsaEncoding: 'der' }, signature);
      } catch {
        valid = false; // not DER at all
      }
      return { valid, keyId: key.KeyID, version: version.Version, state: version.State };
    },

    async exportPublicKey(by, keyId, forDevice, wanted) {
      const key = await readKey(keyId);
      const version = authorizeUse(by, key, KeyUse.Export, wanted ?? null);
      const refused = options.deviceRefusal?.(forDevice.deviceId);
      if (refused !== undefined) {
        fail(
          GatewayErrorCode.Forbidden,
          KeyServiceErrorDetail.DeviceNotActive,
          `device ${forDevice.deviceId} is ${refused}`,
        );
      }
      const devicePublicKey = await assertReceivingDevice(ledger, forDevice);
      const { spki } = await publicKeyOf(key, version);
      const header = Buffer.from(
        JSON.stringify({
          alg: 'dir',
          enc: 'A256GCM',
          kid: key.KeyID,
          kfv: 1,
          ver: version.Version,
          dev: forDevice.deviceId,
          iat: Math.floor(now().getTime() / 1000),
        }),
      ).toString('base64url');
      const kek = { label: `export-kek:${randomUUID()}` };
      try {
        const sealed = await withDeviceMasterKey(hsm, kexLabel, devicePublicKey, async (dmk) => {
          await hsm.deriveAesCbc(
            dmk,
            { iv: KekIv, data: exportKekDerivationData(forDevice.deviceId, key.KeyID, version.Version) },
            { label: kek.label, type: 'aes-256', usage: ['encrypt'], token: false },
          );
          try {
            return await hsm.encryptAesGcm(kek, spki, envelopeAad(header));
          } finally {
            await hsm.destroyKey(kek, ['secret']).catch(() => 0);
          }
        });
        const body = sealed.ciphertext;
        const tagAt = body.length - 16;
        return {
          keyId: key.KeyID,
          version: version.Version,
          deviceId: forDevice.deviceId,
          fingerprint: version.Fingerprint,
          wrapped: formatEnvelope(header, sealed.iv, body.subarray(0, tagAt), body.subarray(tagAt)),
        };
      } catch (err) {
        hsmFailure(key, version, err);
      }
    },
  };
}

/** The receiving device is enrolled, active, and `certificatePem` is the certificate it enrolled with. */
async function assertReceivingDevice(ledger: Ledger, forDevice: ReceivingDevice): Promise<KeyObject> {
  let device: DeviceRecord | null;
  try {
    device = await ledger.devices.get(forDevice.deviceId);
  } catch (err) {
    if (ledgerRefusalCode(err) !== ErrorCode.InvalidArgument) throw err;
    device = null;
  }
  if (device === null) {
    fail(
      GatewayErrorCode.NotFound,
      KeyServiceErrorDetail.DeviceNotFound,
      `device ${forDevice.deviceId} is not enrolled`,
    );
  }
  if (device.Status !== 'active') {
    fail(
      GatewayErrorCode.Forbidden,
      KeyServiceErrorDetail.DeviceNotActive,
      `device ${device.DeviceID} is ${device.Status}`,
    );
  }
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(forDevice.certificatePem);
  } catch (err) {
    fail(GatewayErrorCode.BadRequest, KeyServiceErrorDetail.DeviceCertificateNotEnrolled, 'not a certificate', err);
  }
  // The ledger's fingerprint vouches for this exact certificate, so its key is the device's.
  if (sha256Hex(certificate.raw) !== device.CertFingerprint) {
    fail(
      GatewayErrorCode.Forbidden,
      KeyServiceErrorDetail.DeviceCertificateNotEnrolled,
      `the certificate is not the one device ${device.DeviceID} enrolled with`,
    );
  }
  return certificate.publicKey;
}
