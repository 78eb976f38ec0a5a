/**
 * @keyfleet/gateway: the keyfleet service. HSM custody (PKCS#11), the device CA, the REST API,
 * and the ledger clients. Programs start it through {@link openGateway}; `main.ts` is the
 * process entry point and `cli/keyfleet.ts` the operator's command line.
 *
 * @packageDocumentation
 */
export { openGateway, type Gateway, type OpenGatewayOptions } from './app';
export { loadConfig, LedgerKind, type Config } from './config';
export { GatewayError, GatewayErrorCode, isGatewayError } from './errors';
export { ApiRole, issueBearerToken, newBearerAuthenticator, type Authenticator, type Principal } from './auth/bearer';
export { newDeviceCa, deviceUri, DEVICE_ID_PATTERN, type DeviceCa, type DeviceCertificate } from './ca/device-ca';
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
export { newFabricTransport, type ConnectionProfile, type FabricTransportOptions } from './ledger/fabric';
export { newLocalTransport } from './ledger/local';
export type { LedgerTransport, Submitted } from './ledger/transport';
export { newHttpServer, type HttpServerOptions } from './http/server';
export { newApiClient, ApiError, type ApiClient } from './cli/api-client';
export * from './hsm';
