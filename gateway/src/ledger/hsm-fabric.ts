import { join } from 'node:path';
import type { EcSigningKey } from '../crypto/ec-key';
import type { Hsm } from '../hsm';
import { newFabricTransport, type FabricTransport } from './fabric';
import { ensureFabricIdentity } from './fabric-identity';

export interface HsmFabricTransportOptions {
  /** The connection description network/network.sh writes. */
  readonly profilePath: string;
  /** The organisation whose peer and CA this process uses, e.g. `Org1`, `Org2`. */
  readonly org: string;
  /** The registered Fabric CA enrolment id the HSM key is certified as. */
  readonly enrolmentId: string;
  readonly hsm: Hsm;
  /** The HSM-held Fabric identity key, from `hsmSigningKey` (its label is the PKCS#11 label). */
  readonly key: EcSigningKey;
  /** Where the enrolment certificate is kept between starts. */
  readonly dataDir: string;
  /** The chaincode name, when not the connection description's (a second namespace). */
  readonly chaincode?: string | undefined;
  /** The channel, when not the connection description's (a shard or the governance channel). */
  readonly channel?: string | undefined;
}

/**
 * A Fabric transport that writes as the HSM-held key, certified by the organisation's CA for the
 * registered enrolment (enrolled with a CSR signed in the token on first start, kept afterwards).
 * Shared by the operator gateway (Org1) and the verifier service (Org2).
 */
export async function openHsmFabricTransport(options: HsmFabricTransportOptions): Promise<FabricTransport> {
  const { profilePath, org, enrolmentId, hsm, key } = options;
  const { certificatePem } = await ensureFabricIdentity({
    profilePath,
    org,
    enrolmentId,
    key,
    certificateFile: join(options.dataDir, `fabric-identity-${enrolmentId}.pem`),
  });
  return newFabricTransport({
    profilePath,
    org,
    certificatePem,
    signer: hsm.newSigner({ label: key.label }),
    ...(options.chaincode === undefined ? {} : { chaincode: options.chaincode }),
    ...(options.channel === undefined ? {} : { channel: options.channel }),
  });
}
