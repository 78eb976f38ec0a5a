/**
 * @keyfleet/gateway: the keyfleet service. HSM custody (PKCS#11), the device CA, the REST API,
 * and the ledger clients. Programs start the operator gateway through {@link openGateway} and
 * Org2's attestation verifier through {@link openVerifier}; `main.ts` and `verifier-main.ts` are
 * their process entry points and `cli/keyfleet.ts` the operator's command line.
 *
 * @packageDocumentation
 */
export { openGateway, type Gateway } from './app';
export { loadConfig, type Config } from './config';
export { openVerifier, TLS_CA_FILE, type VerifierService } from './verifier-app';
export { loadVerifierConfig, type VerifierConfig } from './verifier-config';
export { chainHeight, decodeBlock, type BlockTransaction, type StateWrite } from './ledger/blocks';
export { openLedgerReader, type LedgerReader } from './ledger/ledger-reader';
export { readOrganization, readShardChannels, type OrganizationProfile, type ShardChannels } from './ledger/fabric';
export { GatewayError, GatewayErrorCode, isGatewayError } from './errors';
export { ApiRole, issueBearerToken, newBearerAuthenticator, type Authenticator, type Principal } from './auth/bearer';
export { newDeviceCa, deviceUri, type DeviceCa, type DeviceCertificate } from './ca/device-ca';
export {
  assertFabricIdentity,
  enrolFabricIdentity,
  enrolWithCsr,
  FabricEnrolmentFailure,
  newIdentityCsr,
  type FabricCsrEnrolmentOptions,
  type FabricEnrolment,
  type FabricEnrolmentOptions,
  type FabricIdentityExpectations,
  type IdentityCsrOptions,
} from './ca/fabric-enrolment';
export type { EcSigningKey } from './crypto/ec-key';
export { hsmSigningKey } from './crypto/hsm-key';
export { signCompactJws } from './crypto/jws';
export { newLedgerClient, type LedgerClient, type Written } from './ledger/ledger-client';
export { ledgerPort, ledgerRefusalCode, type Fields, type Ledger } from './ledger/port';
export {
  newShardRouter,
  type Placement,
  type ShardChannel,
  type ShardRouter,
  type ShardRouterOptions,
} from './ledger/shard-router';
export type { KeyHome, ShardDirectory, ShardHit } from './ledger/shard-directory';
export type { ShardLoad, ShardMapBody, ShardOverview } from './domain/shards';
export {
  asPrincipal,
  currentPrincipal,
  devicePrincipal,
  gatewayService,
  verifierService,
  type RequestPrincipal,
} from './ledger/principal-context';
export { newFabricTransport, type ConnectionProfile, type FabricTransportOptions } from './ledger/fabric';
export type { LedgerTransport, Submitted } from './ledger/transport';
export { newHttpServer, type HttpServerOptions } from './http/server';
// Also brings in base's augmentation of Fastify's request (`principal`) and route config (`roles`).
export type { BaseServerOptions } from './http/base';
export { readTlsSwitch, TLS13_ONLY, type HttpsOptions } from './http/tls';
export { writeServerCertificateFiles, type CertificateFiles } from './http/certificate-files';
export { newApiClient, ApiError, type ApiClient } from './cli/api-client';
export * from './hsm';
export { runService } from './service-process';
export { newEnvReader, type Env } from './env';
export { createCredentials } from './cli/credentials';
export * as x509 from './crypto/x509';
export { issueEnrolmentToken } from './domain/enrolment-token';
export { newKeyService } from './domain/keys';
export type { KeyRegistration } from './domain/services';
export {
  exportKekDerivationData,
  newApplicationKeyRotation,
  newKeyOperations,
  parseEnvelope,
  type ApplicationKeyRotation,
  type KeyOperations,
} from './key-service';
export {
  findVersionKey,
  generateVersionKey,
  withDeviceMasterKey,
  wrapForDevice,
  type VersionKey,
} from './rotation/hsm-steps';
export { nextKeyCommitment } from './rotation';
export { newRotationScheduler, type RotationScheduler } from './scheduler';
export { handleError } from './http/errors';
export { registerKeyRoutes } from './http/key-routes';
export { ProofFailure, verifyBatchRecordSignature, verifyProofAgainstLedger } from './attestation/audit';
