/**
 * The keyfleet EAT profile and the EAR it is answered with (docs/protocol-attestation.md): the
 * constants and claim shapes the agent writes and the verifier reads, written once.
 */
import type { AttestationResult, AttestationStatus, DigestAlgorithm } from './types.js';

/** `eat_profile` of keyfleet evidence (RFC 9711 §4.3.2: a URI naming the profile). */
export const EvidenceProfile = 'tag:github.com,2026:keyfleet/eat/v1';

/** The JWS `typ` of evidence: the `application/eat+jwt` media type (RFC 9782). */
export const EvidenceType = 'eat+jwt';

/**
 * CoAP content-format of a `measurements` entry (RFC 9711 §4.2.16): 50 is `application/json`.
 * The content is a JSON array of {@link FileMeasurement}; the profile pins that shape.
 */
export const MeasurementsContentFormat = 50;

/** RFC 9711 §4.2.9 `dbgstat` values. */
export const DebugStatus = {
  Enabled: 0,
  Disabled: 1,
  DisabledSinceBoot: 2,
  DisabledPermanently: 3,
  DisabledFullyAndPermanently: 4,
} as const;
export type DebugStatus = (typeof DebugStatus)[keyof typeof DebugStatus];

/** CoSWID `version-scheme` semver (RFC 9393 §4.1), used in `swversion` when the version is semver. */
export const SemverScheme = 16384;

/** RFC 9711 §4.2.1 UEID type byte for a random (here: key-derived) 32-byte id. */
export const UeidTypeRand = 0x01;

/** One measured file, as carried inside `measurements` and compared with the ledger's reference values. */
export interface FileMeasurement {
  /** The reference-value name: an id (ids.ts). */
  readonly name: string;
  readonly alg: DigestAlgorithm;
  /** Lower-case hex. */
  readonly digest: string;
}

/** The claims of keyfleet evidence (RFC 9711 names; byte strings are base64url, RFC 9711 §7.2.2). */
export interface EvidenceClaims {
  readonly eat_profile: string;
  readonly eat_nonce: string;
  readonly ueid: string;
  readonly iat: number;
  readonly hwmodel: string;
  readonly swname: string;
  readonly swversion: readonly [string] | readonly [string, number];
  readonly dbgstat: DebugStatus;
  readonly measurements: readonly (readonly [number, string])[];
}

/** `eat_profile` of an EAR (draft-ietf-rats-ear, the Veraison profile). */
export const EarProfile = 'tag:github.com,2023:veraison/ear';
/** The one submodule an EAR appraises: the keyfleet agent's environment on the device. */
export const EarSubmodule = 'keyfleet-agent';

/** AR4SI trustworthiness vector (draft-ietf-rats-ar4si §2.3): one tier per claim. */
export interface TrustworthinessVector {
  readonly 'instance-identity': number;
  readonly configuration: number;
  readonly executables: number;
  readonly 'file-system': number;
  readonly hardware: number;
  readonly 'runtime-opaque': number;
  readonly 'storage-opaque': number;
  readonly 'sourced-data': number;
}

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
