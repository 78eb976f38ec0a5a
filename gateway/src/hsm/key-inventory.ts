import type { EcPublicKey, Hsm } from './hsm.js';
import { HsmError, HsmErrorCode } from './hsm-error.js';

/** One long-lived key the gateway expects on its token. */
export interface GatewayKey {
  readonly label: string;
  readonly purpose: string;
  /** CKA_SIGN on the private key. */
  readonly sign: boolean;
  /** CKA_DERIVE on the private key (ECDH). */
  readonly derive: boolean;
}

/**
 * Every key the operator gateway (Org1) needs; all P-256, sensitive and never extractable. See
 * docs/hsm.md. No Org2 key is among them: the attestation verifier has its own token ({@link verifierKeys}).
 */
export const gatewayKeys: readonly GatewayKey[] = [
  { label: 'device-ca', purpose: 'root of the device CA: signs device certificates', sign: true, derive: false },
  {
    label: 'metadata-signing',
    purpose: 'signs ledger records (JWS) that clients verify against a pinned anchor',
    sign: true,
    derive: false,
  },
  { label: 'fabric-identity', purpose: "the gateway's Fabric identity: signs transactions", sign: true, derive: false },
  {
    label: 'device-kex',
    purpose: 'ECDH with devices at enrolment: device master keys are derived from it',
    sign: false,
    derive: true,
  },
];

/**
 * Every key of the verifier service (Org2) on its own token. Its third key, the challenge HMAC key
 * `attestation-challenge`, is secret and made by the service itself.
 */
export const verifierKeys: readonly GatewayKey[] = [
  {
    label: 'verifier',
    purpose: "signs attestation results (EAR) and the verifier's ledger writes; a verifier trust anchor",
    sign: true,
    derive: false,
  },
  {
    label: 'fabric-identity',
    purpose: "the verifier's Fabric identity (Org2, role verifier): signs transactions",
    sign: true,
    derive: false,
  },
  {
    label: 'tls-ca',
    purpose: "root of the verifier's TLS CA: signs the certificate of its HTTPS listener at each start",
    sign: true,
    derive: false,
  },
];

/** What {@link ensureKeys} did. */
export interface EnsureKeysResult {
  readonly created: readonly string[];
  readonly existing: readonly string[];
  readonly publicKeys: Readonly<Record<string, EcPublicKey>>;
}

/**
 * Creates every key of `keys` that is missing and checks the ones that exist: a key that is
 * extractable, not sensitive or not P-256 is refused rather than used. Idempotent.
 *
 * @throws HsmError `HSM_KEY_NOT_PERMITTED` when an existing key has unsafe attributes
 */
export async function ensureKeys(
  hsm: Hsm,
  keys: readonly GatewayKey[] = gatewayKeys,
  options: { readonly replicable?: boolean } = {},
): Promise<EnsureKeysResult> {
  // In an HSM cluster the keys must leave, but only wrapped under the SO's trusted cluster KEK
  // (docs/hsm-cluster.md): extractable with CKA_WRAP_WITH_TRUSTED instead of never extractable.
  const replicable = options.replicable === true;
  const created: string[] = [];
  const existing: string[] = [];
  const publicKeys: Record<string, EcPublicKey> = {};
  for (const key of keys) {
    const found = await hsm.findKeys({ label: key.label, kind: 'private' });
    if (found.length === 0) {
      publicKeys[key.label] = await hsm.generateEcKeyPair({
        label: key.label,
        sign: key.sign,
        derive: key.derive,
        replicable,
      });
      created.push(key.label);
      continue;
    }
    const [attrs] = found;
    if (
      found.length > 1 ||
      attrs === undefined ||
      attrs.keyType !== 'ec' ||
      attrs.extractable !== replicable ||
      (replicable && attrs.wrapWithTrusted !== true) ||
      attrs.sensitive !== true ||
      !attrs.token ||
      attrs.usage.includes('sign') !== key.sign ||
      attrs.usage.includes('derive') !== key.derive
    ) {
      throw new HsmError(
        HsmErrorCode.KeyNotPermitted,
        `existing key "${key.label}" does not have the required attributes (one token EC key, sensitive, ` +
          `${replicable ? 'extractable only under a trusted key' : 'not extractable'}, sign=${key.sign}, ` +
          `derive=${key.derive})`,
      );
    }
    publicKeys[key.label] = await hsm.getPublicKey({ label: key.label });
    existing.push(key.label);
  }
  return { created, existing, publicKeys };
}
