/**
 * keyfleet's one id grammar, for every id a caller names: devices, keys, groups, batches, trust
 * anchors, policies, measured files. A letter or digit, then letters, digits and `. _ : @ -`,
 * 1-128 characters in all. Ids become parts of Fabric composite keys, HSM labels, URNs and URL
 * paths, so the alphabet is conservative (never U+0000, `/`, whitespace or `%`).
 *
 * Device ids are also the subject CN of device certificates, so they are at most
 * {@link DeviceIdMaxLength} characters (RFC 5280 ub-common-name); the grammar is the same.
 */
export const IdMaxLength = 128;
export const IdPattern = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;
/** The same rule for a JSON schema (Fastify's Ajv). */
export const IdSchema = { type: 'string', minLength: 1, maxLength: IdMaxLength, pattern: IdPattern.source } as const;
/** How the rule reads in an error message. */
export const IdRuleText = 'an identifier ([A-Za-z0-9._:@-], 1-128 characters, starting with a letter or digit)';

/** Whether `value` is an id, at most `maxLength` characters when a field keeps ids shorter. */
export function isId(value: unknown, maxLength: number = IdMaxLength): boolean {
  return typeof value === 'string' && value.length <= maxLength && IdPattern.test(value);
}

/** RFC 5280 Appendix A ub-common-name: a device id is its certificate's CN. */
export const DeviceIdMaxLength = 64;
export const DeviceIdSchema = { ...IdSchema, maxLength: DeviceIdMaxLength } as const;

export function isDeviceId(value: unknown): boolean {
  return isId(value, DeviceIdMaxLength);
}

/**
 * A verifier's appraisal policy id is at most 64 characters: it is the first part of every
 * result's PolicyID (`<policyId>:<group policy>@<revision>`), which the ledger bounds.
 */
export const PolicyIdMaxLength = 64;
