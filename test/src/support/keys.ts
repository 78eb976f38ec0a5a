/**
 * The body of `POST /v1/keys` as the integration suites send it, and the access-policy entries
 * they grant with: one place, so a change of the registration shape is made once.
 */

/** Every operator of Org1, as an access-policy entry. */
export const Org1Operators = { mspId: 'Org1MSP', role: 'operator' } as const;

/** One application of Org1, as an access-policy entry. */
export const application = (id: string) => ({ mspId: 'Org1MSP', role: 'application', id }) as const;

/**
 * An application key of `billing`: AES-256 for encryption, due for rotation daily, administered by
 * Org1's operators and read, used or rotated by nobody else; `overrides` replace whole fields.
 */
export function keyRegistration(keyId: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    keyId,
    algorithm: 'AES-256',
    purpose: 'encrypt',
    owner: { type: 'application', id: 'billing' },
    rotationIntervalSeconds: 86400,
    accessPolicy: { read: [], use: [], rotate: [], administer: [Org1Operators] },
    ...overrides,
  };
}
