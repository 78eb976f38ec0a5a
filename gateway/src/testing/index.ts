/**
 * @keyfleet/gateway/testing: test doubles and throw-away fixtures for keyfleet's own tests and
 * benchmarks — never imported by production code. SoftHSM stores, a Fabric CA server, the
 * contract in process behind a transport, and the unit-test worlds of rotation and attestation.
 */
export { createSoftHsmStore, softHsmModule, type SoftHsmStore } from './softhsm';
export { fabricCaBinDir, freePort, startFabricCaServer, type FabricCaServer } from './fabric-ca-server';
export { newLocalTransport } from './local-transport';
export { newSoftwareKey } from './software-key';
