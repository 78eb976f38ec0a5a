import { CompactSign, exportJWK, generateKeyPair, type KeyLike } from 'jose';

import { canonicalBytes, type PublicJwk } from '@keyfleet/protocol';

export interface SignOptions {
  /** Override the `kid` header. */
  kid?: string;
  /** Sign these bytes instead of the canonical JSON of the record. */
  payload?: Uint8Array;
  /** Extra protected header parameters. */
  header?: Record<string, unknown>;
  alg?: string;
}

/** Stands in for the HSM: a P-256 key that makes ES256 compact JWS over canonical records. */
export class TestSigner {
  readonly anchorId: string;
  readonly publicJwk: PublicJwk;
  private readonly privateKey: KeyLike;

  private constructor(anchorId: string, privateKey: KeyLike, publicJwk: PublicJwk) {
    this.anchorId = anchorId;
    this.privateKey = privateKey;
    this.publicJwk = publicJwk;
  }

  static async generate(anchorId: string): Promise<TestSigner> {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jwk = await exportJWK(publicKey);
    if (typeof jwk.x !== 'string' || typeof jwk.y !== 'string') throw new Error('no EC point in JWK');
    return new TestSigner(anchorId, privateKey, { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y });
  }

  async sign(record: unknown, options: SignOptions = {}): Promise<string> {
    return new CompactSign(options.payload ?? canonicalBytes(record))
      .setProtectedHeader({ alg: options.alg ?? 'ES256', kid: options.kid ?? this.anchorId, ...options.header })
      .sign(this.privateKey);
  }
}
