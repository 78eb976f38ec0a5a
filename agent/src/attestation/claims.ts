/**
 * The keyfleet EAT profile: the constants both the agent and the verifier agree on
 * (docs/protocol-attestation.md). They are repeated, not shared, because the agent runs on
 * devices and imports no gateway code.
 */

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
  /** The reference-value name: `[A-Za-z0-9][A-Za-z0-9._:@-]*`, at most 128 characters. */
  readonly name: string;
  readonly alg: 'sha-256' | 'sha-384' | 'sha-512';
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
