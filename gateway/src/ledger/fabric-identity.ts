import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { assertFabricIdentity, enrolFabricIdentity } from '../ca/fabric-enrolment';
import type { EcSigningKey } from '../crypto/ec-key';
import { GatewayError, GatewayErrorCode } from '../errors';
import { readOrganization } from './fabric';

export interface FabricIdentityOptions {
  readonly profilePath: string;
  readonly org: string;
  /** The registered enrolment id (network/network.sh registers `keyfleet-gateway` in Org1). */
  readonly enrolmentId: string;
  /** The HSM-held key the certificate is for. */
  readonly key: EcSigningKey;
  /** Where the certificate is kept between starts. */
  readonly certificateFile: string;
}

export interface FabricIdentity {
  readonly mspId: string;
  readonly certificatePem: string;
}

/**
 * The HSM-held key's Fabric identity: the certificate kept from an earlier start when it is still
 * this key's, issued by this organisation's CA and carrying the role; otherwise a new enrolment
 * with a CSR signed in the HSM. No private key ever leaves the token.
 */
export async function ensureFabricIdentity(options: FabricIdentityOptions): Promise<FabricIdentity> {
  const org = readOrganization(options.profilePath, options.org);
  const enrolment = org.enrolments[options.enrolmentId];
  if (!enrolment) {
    throw new GatewayError(
      GatewayErrorCode.ConfigInvalid,
      `${options.enrolmentId} is not a registered enrolment of ${options.org} in ${options.profilePath}`,
    );
  }
  const caChainPem = await readFile(org.ca.caCert, 'utf8');
  const expected = { publicKey: options.key.publicKey, role: enrolment.role, caChainPem };

  const kept = await readFile(options.certificateFile, 'utf8').catch(() => null);
  if (kept !== null) {
    try {
      assertFabricIdentity(kept, expected);
      return { mspId: org.mspId, certificatePem: kept };
    } catch {
      // Another key, another CA (a new network) or another role: enrol again.
    }
  }
  const secret = (await readFile(enrolment.secretFile, 'utf8').catch(() => '')).trim();
  if (secret === '') {
    throw new GatewayError(
      GatewayErrorCode.ConfigInvalid,
      `no enrolment secret for ${options.enrolmentId} in ${enrolment.secretFile}`,
    );
  }
  const { certificatePem } = await enrolFabricIdentity(options.key, {
    url: org.ca.url,
    caName: org.ca.caName,
    tlsRootCertPem: await readFile(org.ca.tlsRootCert, 'utf8'),
    enrolmentId: options.enrolmentId,
    enrolmentSecret: secret,
    role: enrolment.role,
  });
  assertFabricIdentity(certificatePem, expected);
  await mkdir(dirname(options.certificateFile), { recursive: true });
  await writeFile(options.certificateFile, certificatePem);
  return { mspId: org.mspId, certificatePem };
}
