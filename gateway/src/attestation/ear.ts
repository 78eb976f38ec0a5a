import type { KeyObject } from 'node:crypto';
import { compactVerify, decodeProtectedHeader } from 'jose';
import type { AttestationResult, AttestationStatus } from '@keyfleet/chaincode';
import type { EcSigningKey } from '../crypto/ec-key';
import { signCompactJws } from '../crypto/jws';
import type { TrustworthinessVector } from './appraisal';

/** `eat_profile` of an EAR (draft-ietf-rats-ear, the Veraison profile). */
export const EarProfile = 'tag:github.com,2023:veraison/ear';
/** The one submodule an EAR appraises: the keyfleet agent's environment on the device. */
export const EarSubmodule = 'keyfleet-agent';

/** The claims of a keyfleet attestation result (draft-ietf-rats-ear §3). */
export interface EarClaims {
  readonly eat_profile: typeof EarProfile;
  readonly iat: number;
  readonly eat_nonce: string;
  /** AR4SI §2.2.2 verifier identity: the software build and the verifier's ledger anchor id. */
  readonly 'ear.verifier-id': { readonly build: string; readonly developer: string };
  readonly submods: Readonly<
    Record<
      string,
      {
        readonly 'ear.status': AttestationStatus;
        readonly 'ear.trustworthiness-vector': TrustworthinessVector;
        readonly 'ear.appraisal-policy-id': string;
      }
    >
  >;
  /** The device (the attester), as in the device certificate. */
  readonly sub: string;
  /** The ledger record of this result: its Merkle leaf in a batch, or its RecordAttestation fields. */
  readonly 'keyfleet.result': AttestationResult;
}

/** Signs an EAR as a JWT (ES256) with the verifier's HSM key; `kid` is its ledger anchor id. */
export function signEar(key: EcSigningKey, anchorId: string, claims: EarClaims): Promise<string> {
  return signCompactJws(key, { kid: anchorId, typ: 'JWT' }, Buffer.from(JSON.stringify(claims), 'utf8'));
}

/**
 * Verifies an EAR with the verifier's public key (a pinned trust anchor) and returns its claims.
 * For devices, relying parties and auditors; throws on any mismatch.
 */
export async function verifyEar(ear: string, verifierKey: KeyObject): Promise<EarClaims> {
  const header = decodeProtectedHeader(ear);
  if (header.typ !== 'JWT') throw new Error('an EAR has typ JWT');
  const { payload } = await compactVerify(ear, verifierKey, { algorithms: ['ES256'] });
  const claims = JSON.parse(Buffer.from(payload).toString('utf8')) as Record<string, unknown>;
  if (claims.eat_profile !== EarProfile) throw new Error(`an EAR has eat_profile ${EarProfile}`);
  return claims as unknown as EarClaims;
}
