import type { JsonWebKey, KeyObject } from 'node:crypto';

/**
 * fabric-gateway's `Signer` shape: sign a digest, return a DER ECDSA signature with low S.
 * Structurally identical to `@hyperledger/fabric-gateway`'s type, so it can be passed to
 * `connect({ signer })` without this module importing the Fabric SDK.
 */
export type Signer = (digest: Uint8Array) => Promise<Uint8Array>;

/** Where the user PIN comes from. A string is the PIN itself (already read by `loadConfig`). */
export type PinSource = string | { readonly env: string } | { readonly file: string };

/** Options of {@link newHsm}. */
export interface HsmOptions {
  /** RFC 7512 URI selecting the token, e.g. `pkcs11:token=keyfleet`. Object attributes are ignored. */
  readonly uri: string;
  /** Path of the PKCS#11 library; defaults to the URI's `module-path`. */
  readonly modulePath?: string;
  /** The user PIN; defaults to the URI's `pin-source` file. */
  readonly pin?: PinSource;
  /** Environment for `{ env }` PIN sources; defaults to `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Maximum PKCS#11 sessions (concurrent operations); default 4, the libuv thread-pool size. */
  readonly sessions?: number;
  /** Retries after a session or token fault before failing with `HSM_SESSION_FAILED`; default 3. */
  readonly maxRetries?: number;
  /** Randomness for AES-GCM IVs and secret-key CKA_IDs; default `crypto.randomBytes`. */
  readonly randomBytes?: (size: number) => Uint8Array;
}

/** Names one key object on the token by CKA_LABEL or CKA_ID. */
export type KeyRef = { readonly label: string } | { readonly id: Uint8Array };

/** The PKCS#11 object class of a key (CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_SECRET_KEY). */
export type KeyKind = 'private' | 'public' | 'secret';

/** Secret key types this layer creates: CKK_AES (256-bit) or CKK_GENERIC_SECRET for HMAC. */
export type SecretKeyType = 'aes-256' | 'hmac-sha256';

/** CKA_ENCRYPT, CKA_DECRYPT, CKA_WRAP, CKA_UNWRAP, CKA_DERIVE, CKA_SIGN, CKA_VERIFY. */
export type SecretKeyUsage = 'encrypt' | 'decrypt' | 'wrap' | 'unwrap' | 'derive' | 'sign' | 'verify';

/** A P-256 key pair to generate. The private key is always sensitive and never extractable. */
export interface EcKeyPairTemplate {
  readonly label: string;
  /** CKA_SIGN (ECDSA); default true. */
  readonly sign?: boolean;
  /** CKA_DERIVE (ECDH); default false. */
  readonly derive?: boolean;
  /** A token (persistent) object; default true. */
  readonly token?: boolean;
  /**
   * For an HSM cluster (docs/hsm-cluster.md): the private key is CKA_EXTRACTABLE with
   * CKA_WRAP_WITH_TRUSTED, so it can leave only wrapped under a trusted key (the SO-provisioned
   * cluster KEK), never under a key a user made. Default false: never extractable.
   */
  readonly replicable?: boolean;
}

/** A secret key to generate, derive or unwrap. Always CKA_SENSITIVE. */
export interface SecretKeyTemplate {
  readonly label: string;
  readonly type: SecretKeyType;
  readonly usage: readonly SecretKeyUsage[];
  /** CKA_ID; default 16 random bytes. */
  readonly id?: Uint8Array;
  /** A token (persistent) object; default true. Session objects vanish with their session. */
  readonly token?: boolean;
  /**
   * CKA_EXTRACTABLE; default false. Only for keys that must leave the HSM wrapped (a rotated
   * device key); still sensitive, so never readable in the clear.
   */
  readonly extractable?: boolean;
  /**
   * CKA_WRAP_WITH_TRUSTED (with `extractable`): the key can be wrapped only under a CKA_TRUSTED
   * key, which only a security officer can make (docs/hsm-cluster.md). Default false.
   */
  readonly wrapWithTrusted?: boolean;
}

/** A P-256 public key and where it lives. */
export interface EcPublicKey {
  readonly label: string;
  /** CKA_ID = SHA-256 of `point` (Fabric's convention) for keys made by this layer. */
  readonly id: Uint8Array;
  /** Uncompressed SEC 1 point, 65 bytes. */
  readonly point: Uint8Array;
  /** DER SubjectPublicKeyInfo. */
  readonly spki: Uint8Array;
  readonly pem: string;
  readonly jwk: JsonWebKey;
  readonly keyObject: KeyObject;
  /** `pkcs11:token=…;object=…;id=…` for the ledger. */
  readonly uri: string;
}

/** A secret key on the token. */
export interface SecretKeyInfo {
  readonly label: string;
  readonly id: Uint8Array;
  readonly type: SecretKeyType;
  /** CKA_CHECK_VALUE (PKCS#11 v2.40 §4.10: first 3 bytes of AES-ECB(key, 0¹²⁸)), if the token gives one. */
  readonly checkValue?: Uint8Array;
  readonly uri: string;
}

/** The security-relevant attributes of a key object. */
export interface KeyAttributes {
  readonly kind: KeyKind;
  readonly keyType: 'ec' | 'aes' | 'generic-secret' | 'other';
  readonly label: string;
  readonly id: Uint8Array;
  readonly token: boolean;
  readonly private: boolean;
  /** Private and secret keys only. */
  readonly sensitive?: boolean;
  readonly extractable?: boolean;
  readonly alwaysSensitive?: boolean;
  readonly neverExtractable?: boolean;
  /** Private and secret keys: CKA_WRAP_WITH_TRUSTED (a cluster's replicable key). */
  readonly wrapWithTrusted?: boolean;
  readonly usage: readonly SecretKeyUsage[];
  /** Secret keys: CKA_VALUE_LEN in bytes. */
  readonly valueLength?: number;
  /**
   * Secret keys: CKA_CHECK_VALUE (PKCS#11 v2.40 §4.10), when the token keeps one. SoftHSM's is
   * right for generated keys and wrong for derived ones, so trust it for generated keys only.
   */
  readonly checkValue?: Uint8Array;
}

/** AES-GCM output: a fresh 96-bit IV and the ciphertext with its 128-bit tag appended. */
export interface AesGcmCiphertext {
  readonly iv: Uint8Array;
  readonly ciphertext: Uint8Array;
}

/** Parameters of CKM_AES_CBC_ENCRYPT_DATA (PKCS#11 v2.40 §2.15.2). */
export interface AesCbcDerivation {
  /** 16 bytes. */
  readonly iv: Uint8Array;
  /** A non-empty multiple of 16 bytes; the derived key is AES-CBC(base, iv, data) truncated to its length. */
  readonly data: Uint8Array;
}

/**
 * The gateway's HSM: one token, a pool of sessions, and the operations keyfleet's protocols need.
 * Every key stays in the token; the only key bytes that leave are wrapped (RFC 5649).
 */
export interface Hsm {
  /** The token label the URI resolved to. */
  readonly tokenLabel: string;

  /** Generates a P-256 key pair; CKA_ID = SHA-256 of the public point. Fails if the label exists. */
  generateEcKeyPair(template: EcKeyPairTemplate): Promise<EcPublicKey>;
  /** Generates an AES-256 or HMAC-SHA256 key. Fails if the label exists. */
  generateSecretKey(template: SecretKeyTemplate): Promise<SecretKeyInfo>;

  /** The public half of a P-256 key pair (found as CKO_PUBLIC_KEY). */
  getPublicKey(key: KeyRef): Promise<EcPublicKey>;
  /** Attributes of the single object of `kind` that `key` names. */
  getKeyAttributes(key: KeyRef, kind: KeyKind): Promise<KeyAttributes>;
  /** Every key object matching the filter (all keys when empty). */
  findKeys(filter?: {
    readonly label?: string;
    readonly id?: Uint8Array;
    readonly kind?: KeyKind;
  }): Promise<KeyAttributes[]>;
  /** Destroys every object of `kinds` that `key` names (a key pair: both halves). Returns how many. */
  destroyKey(key: KeyRef, kinds?: readonly KeyKind[]): Promise<number>;

  /**
   * ECDSA P-256 over a digest with CKM_ECDSA (PKCS#11 v2.40 §2.3.6), always low S.
   * @param format `der` (default; Fabric, X.509) or `ieee-p1363` (`r||s`, JWS ES256)
   */
  signDigest(key: KeyRef, digest: Uint8Array, format?: 'der' | 'ieee-p1363'): Promise<Uint8Array>;
  /** A fabric-gateway `Signer` over the private key `key`. */
  newSigner(key: KeyRef): Signer;

  /**
   * ECDH (CKM_ECDH1_DERIVE, CKD_NULL, no shared data: PKCS#11 v2.40 §2.3.16) between a token
   * private key and a peer's P-256 public key; the shared x-coordinate becomes a new secret key
   * object and never leaves the token.
   */
  deriveEcdh(
    privateKey: KeyRef,
    peerPublicKey: Uint8Array | KeyObject,
    target: SecretKeyTemplate,
  ): Promise<SecretKeyInfo>;
  /** Derives a secret key from an AES key with CKM_AES_CBC_ENCRYPT_DATA. */
  deriveAesCbc(baseKey: KeyRef, params: AesCbcDerivation, target: SecretKeyTemplate): Promise<SecretKeyInfo>;

  /** Wraps a secret key with CKM_AES_KEY_WRAP_PAD (RFC 5649). The key must be extractable. */
  wrapKey(wrappingKey: KeyRef, key: KeyRef): Promise<Uint8Array>;
  /** Unwraps RFC 5649 bytes into a new key object; altered bytes fail with `HSM_INTEGRITY_FAILED`. */
  unwrapKey(unwrappingKey: KeyRef, wrapped: Uint8Array, target: SecretKeyTemplate): Promise<SecretKeyInfo>;

  /** HMAC-SHA256 (CKM_SHA256_HMAC) with a `hmac-sha256` key. */
  hmacSha256(key: KeyRef, data: Uint8Array): Promise<Uint8Array>;
  /** AES-256-GCM encryption with a fresh random 96-bit IV and a 128-bit tag (NIST SP 800-38D). */
  encryptAesGcm(key: KeyRef, plaintext: Uint8Array, aad?: Uint8Array): Promise<AesGcmCiphertext>;
  /** AES-256-GCM decryption; a wrong tag fails with `HSM_INTEGRITY_FAILED`. */
  decryptAesGcm(key: KeyRef, ciphertext: AesGcmCiphertext, aad?: Uint8Array): Promise<Uint8Array>;

  /** Sessions open and operations queued, for metrics. */
  stats(): { readonly sessions: number; readonly queued: number };
  /** Closes every session and, for the last Hsm of the library, C_Finalize. Idempotent. */
  close(): Promise<void>;
}

/** A P-256 private key to unwrap, with the attributes of the original (same label and CKA_ID). */
export interface EcPrivateKeyTemplate {
  readonly label: string;
  readonly id: Uint8Array;
  readonly sign: boolean;
  readonly derive: boolean;
  /** Extractable with CKA_WRAP_WITH_TRUSTED, like the original in a cluster. */
  readonly replicable: boolean;
}

/**
 * The extra operations an HSM cluster needs of each member token (docs/hsm-cluster.md): moving
 * EC private keys wrapped under the cluster KEK, and reading check values of keys whose
 * CKA_CHECK_VALUE the token does not keep (SoftHSM has none for unwrapped keys).
 */
export interface ReplicaHsm extends Hsm {
  /** Wraps an EC private key (CKA_EXTRACTABLE) with CKM_AES_KEY_WRAP_PAD (RFC 5649). */
  wrapPrivateKey(wrappingKey: KeyRef, key: KeyRef): Promise<Uint8Array>;
  /** Unwraps an RFC 5649 blob of a P-256 private key into a token object. */
  unwrapPrivateKey(unwrappingKey: KeyRef, wrapped: Uint8Array, target: EcPrivateKeyTemplate): Promise<void>;
  /** Creates the public half of a P-256 key pair (public data) next to an unwrapped private key. */
  importEcPublicKey(target: {
    readonly label: string;
    readonly id: Uint8Array;
    readonly point: Uint8Array;
    readonly verify: boolean;
    readonly derive: boolean;
  }): Promise<EcPublicKey>;
  /**
   * The AES key check value computed in the token: the first 3 bytes of AES-ECB(key, 0¹²⁸)
   * (PKCS#11 v2.40 §4.10), for a key with CKA_ENCRYPT.
   */
  aesCheckValue(key: KeyRef): Promise<Uint8Array>;
}
