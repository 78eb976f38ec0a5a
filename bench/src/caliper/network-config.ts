import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readOrganization, type ConnectionProfile } from '@keyfleet/gateway';

/**
 * Hyperledger Caliper 0.6.0's network configuration (version 2.0) for its Fabric connector, made
 * from the connection description that network/network.sh writes: the channel and its contracts,
 * and per organisation its peers (gRPC+TLS endpoint, TLS CA file, the host name the certificate
 * names) and its CA-enrolled file identities (certificate and private key PEM files). Caliper's
 * peer-gateway connector (the `fabric:2.4` binding, @hyperledger/fabric-gateway) connects each
 * identity to its organisation's first peer, as keyfleet's own gateway does.
 */
export interface CaliperNetworkConfig {
  readonly name: string;
  readonly version: '2.0.0';
  readonly caliper: { readonly blockchain: 'fabric' };
  readonly channels: readonly {
    readonly channelName: string;
    readonly contracts: readonly { readonly id: string }[];
  }[];
  readonly organizations: readonly CaliperOrganization[];
}

export interface CaliperOrganization {
  readonly mspid: string;
  readonly identities: {
    readonly certificates: readonly {
      readonly name: string;
      readonly clientPrivateKey: { readonly path: string };
      readonly clientSignedCert: { readonly path: string };
    }[];
  };
  readonly peers: readonly {
    readonly endpoint: string;
    readonly tlsCACerts: { readonly path: string };
    readonly grpcOptions: Readonly<Record<string, string>>;
  }[];
}

/**
 * The network configuration for `contracts` (chaincode names on the description's channel), with
 * every file identity of every organisation, named as in the description (`operator`, `verifier`,
 * `application`, …; a workload names the organisation too, since `application` is in both).
 * Paths come out absolute: Caliper resolves relative ones against its workspace, not this file.
 */
export function caliperNetworkConfig(connectionPath: string, contracts: readonly string[]): CaliperNetworkConfig {
  const description = JSON.parse(readFileSync(connectionPath, 'utf8')) as ConnectionProfile;
  const organizations = Object.keys(description.organizations).map((org): CaliperOrganization => {
    const profile = readOrganization(connectionPath, org);
    return {
      mspid: profile.mspId,
      identities: {
        certificates: Object.entries(profile.identities).map(([name, identity]) => ({
          name,
          clientPrivateKey: { path: onlyKeyIn(identity.privateKeyDir) },
          clientSignedCert: { path: identity.certificate },
        })),
      },
      peers: profile.peers.map((peer) => ({
        endpoint: peer.endpoint,
        tlsCACerts: { path: peer.tlsRootCert },
        // The peers' certificates name `localhost` (and 127.0.0.1, which Node warns about as a TLS
        // server name): the same override keyfleet's gateway sets.
        grpcOptions: { 'grpc.ssl_target_name_override': peer.hostAlias },
      })),
    };
  });
  return {
    name: 'keyfleet',
    version: '2.0.0',
    caliper: { blockchain: 'fabric' },
    channels: [{ channelName: description.channel, contracts: contracts.map((id) => ({ id })) }],
    organizations,
  };
}

/** Fabric CA's client writes one private key file, named by its SKI, into the keystore folder. */
function onlyKeyIn(keystore: string): string {
  const keys = readdirSync(keystore).filter((name) => name.endsWith('_sk'));
  if (keys.length !== 1) {
    throw new Error(`expected one private key (*_sk) in ${keystore}, found ${keys.length}`);
  }
  return join(keystore, keys[0] as string);
}
