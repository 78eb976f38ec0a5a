import { expect } from 'chai';
import type { Context } from 'fabric-contract-api';

import {
  canonicalJson,
  type ErrorCode,
  errorCodeOf,
  PrincipalKind,
  type PublicJwk,
  type RequestPrincipal,
  sha256Hex,
  TransactionName,
} from '@keyfleet/protocol';
import type { KeyfleetContract } from '../contract.js';
import { newCa, newIdentity, type TestIdentity } from './identities.js';
import { MapStub, type StubEvent } from './map-stub.js';
import { route } from './router.js';
import { TestSigner } from './signer.js';

/** A transaction of the default contract, or one of another contract by its `contract:name`. */
type TxMethod =
  | {
      [K in keyof KeyfleetContract]: KeyfleetContract[K] extends (ctx: Context, ...args: string[]) => Promise<string>
        ? K
        : never;
    }[keyof KeyfleetContract]
  | `${string}:${string}`;

/** The principal of a request built by {@link Harness.req}: operator alice, the usual case. */
export const DefaultPrincipal: RequestPrincipal = Object.freeze({ Kind: PrincipalKind.Operator, ID: 'alice' });

export const StartTime = Date.parse('2026-01-01T00:00:00.000Z');

/** Every caller the tests use: real certificates from two org CAs, plus broken ones. */
export interface Identities {
  operator: TestIdentity;
  operator2: TestIdentity;
  verifier: TestIdentity;
  auditor: TestIdentity;
  app: TestIdentity;
  app2: TestIdentity;
  device: TestIdentity;
  device2: TestIdentity;
  noRole: TestIdentity;
  unknownRole: TestIdentity;
  operatorFromOrg2: TestIdentity;
  verifierFromOrg1: TestIdentity;
  foreignMsp: TestIdentity;
}

export interface Signers {
  metadata: TestSigner;
  verifier: TestSigner;
  deviceCa: TestSigner;
  rogue: TestSigner;
  spare: TestSigner;
}

let shared: Promise<{ ids: Identities; signers: Signers }> | undefined;

/** Certificates and keys are made once per test run (generating them is the slow part). */
export function fixtures(): Promise<{ ids: Identities; signers: Signers }> {
  shared ??= (async () => {
    const org1 = await newCa('Org1');
    const org2 = await newCa('Org2');
    const org3 = await newCa('Org3');
    const as = (ca: typeof org1, mspId: string, cn: string, role?: string, ou?: string) =>
      newIdentity(ca, {
        mspId,
        cn,
        ...(ou === undefined ? {} : { ou }),
        ...(role === undefined ? {} : { attrs: { role } }),
      });
    const ids: Identities = {
      operator: await as(org1, 'Org1MSP', 'gateway-1', 'operator', 'admin'),
      operator2: await as(org1, 'Org1MSP', 'gateway-2', 'operator', 'admin'),
      verifier: await as(org2, 'Org2MSP', 'verifier-1', 'verifier'),
      auditor: await as(org2, 'Org2MSP', 'auditor-1', 'auditor'),
      app: await as(org1, 'Org1MSP', 'app-billing', 'application'),
      app2: await as(org1, 'Org1MSP', 'app-other', 'application'),
      device: await as(org1, 'Org1MSP', 'dev-0001', 'device'),
      device2: await as(org1, 'Org1MSP', 'dev-0002', 'device'),
      noRole: await as(org1, 'Org1MSP', 'someone'),
      unknownRole: await as(org1, 'Org1MSP', 'root-1', 'root'),
      operatorFromOrg2: await as(org2, 'Org2MSP', 'sneaky-1', 'operator'),
      verifierFromOrg1: await as(org1, 'Org1MSP', 'sneaky-2', 'verifier'),
      foreignMsp: await as(org3, 'Org3MSP', 'gateway-x', 'operator'),
    };
    const signers: Signers = {
      metadata: await TestSigner.generate('hsm-metadata-1'),
      verifier: await TestSigner.generate('verifier-1'),
      deviceCa: await TestSigner.generate('hsm-device-ca-1'),
      rogue: await TestSigner.generate('hsm-metadata-1'),
      spare: await TestSigner.generate('hsm-metadata-2'),
    };
    return { ids, signers };
  })();
  return shared;
}

export const hex = (label: string): string => sha256Hex(label);

/**
 * Runs transactions against a MapStub through Fabric's own routing (router.ts): the contract, the
 * Context and the ClientIdentity are those a peer's invocation gets.
 */
export class Harness {
  readonly stub = new MapStub();
  readonly ids: Identities;
  readonly signers: Signers;
  now = StartTime;
  private txCount = 0;
  private requestCount = 0;

  constructor(ids: Identities, signers: Signers) {
    this.ids = ids;
    this.signers = signers;
  }

  static async create(): Promise<Harness> {
    const { ids, signers } = await fixtures();
    return new Harness(ids, signers);
  }

  advance(seconds: number): void {
    this.now += seconds * 1000;
  }

  nextRequestId(): string {
    this.requestCount += 1;
    return `req-${this.requestCount}`;
  }

  /** Opens a transaction, routes `method` as Fabric does; commits on success, rolls back on error. */
  async invoke(identity: TestIdentity, method: string, ...args: string[]): Promise<string> {
    this.txCount += 1;
    this.stub.begin({
      txId: `tx${String(this.txCount).padStart(4, '0')}`,
      timeMs: this.now,
      creator: { mspid: identity.mspId, idBytes: Buffer.from(identity.pem, 'utf8') },
      fcn: method.includes(':') ? method : this.prefix + method,
      params: args,
    });
    try {
      const result = await route(this.stub);
      this.stub.commit();
      return result;
    } catch (err) {
      this.lastRejectedWrites = this.stub.pendingWrites;
      this.lastRejectedEvent = this.stub.pendingEvent !== null;
      this.stub.rollback();
      throw err;
    }
  }

  /** The contract plain transaction names route to inside {@link on} (`''`: the default contract). */
  private prefix = '';

  /** Runs `work` with another contract of the chaincode (`shard-move`, …) as the one plain names route to. */
  async on<T>(contract: { getName(): string }, work: () => Promise<T>): Promise<T> {
    const before = this.prefix;
    this.prefix = `${contract.getName()}:`;
    try {
      return await work();
    } finally {
      this.prefix = before;
    }
  }

  /** Writes the rejected transaction had attempted before it threw (must be zero). */
  lastRejectedWrites = 0;
  lastRejectedEvent = false;

  async read<T>(identity: TestIdentity, method: TxMethod, ...args: string[]): Promise<T> {
    return JSON.parse(await this.invoke(identity, method, ...args)) as T;
  }

  /** Signs `request` (with `signer`, default the metadata anchor) and submits it. */
  async write<T = unknown>(
    identity: TestIdentity,
    method: TxMethod,
    request: Record<string, unknown>,
    signer: TestSigner = this.signers.metadata,
  ): Promise<T> {
    const signed = this.as(identity, request);
    const jws = await signer.sign(signed);
    return JSON.parse(await this.invoke(identity, method, JSON.stringify(signed), jws)) as T;
  }

  /**
   * `request` as `identity` sends it: a request built by req() (operator alice) or one without a
   * Principal names the identity's own default instead; an explicit Principal is kept.
   */
  as(identity: TestIdentity, request: Record<string, unknown>): Record<string, unknown> {
    return !('Principal' in request) || request.Principal === DefaultPrincipal
      ? { ...request, Principal: this.principalFor(identity) }
      : request;
  }

  /**
   * The principal a request names when a test does not set one: operator `alice` for the operator
   * gateway, the verifier's appraisal service for the verifier, and an application or device itself.
   */
  principalFor(identity: TestIdentity): RequestPrincipal {
    const cn = identity.cn;
    if (identity === this.ids.verifier) return { Kind: PrincipalKind.Service, ID: 'verifier.appraisal' };
    if (identity === this.ids.app || identity === this.ids.app2) return { Kind: PrincipalKind.Application, ID: cn };
    if (identity === this.ids.device || identity === this.ids.device2) return { Kind: PrincipalKind.Device, ID: cn };
    return { Kind: PrincipalKind.Operator, ID: 'alice' };
  }

  get lastEvent(): { name: string; payload: Record<string, unknown>; txId: string } {
    const event: StubEvent | undefined = this.stub.events.at(-1);
    if (event === undefined) throw new Error('no event emitted');
    return {
      name: event.name,
      txId: event.txId,
      payload: JSON.parse(Buffer.from(event.payload).toString('utf8')) as Record<string, unknown>,
    };
  }

  // ---- request builders (defaults a test can override) -------------------------------------------

  req(action: string, fields: Record<string, unknown>): Record<string, unknown> {
    return { Action: action, RequestID: this.nextRequestId(), Principal: DefaultPrincipal, ...fields };
  }

  anchorRequest(
    anchorId: string,
    kind: string,
    publicKey: PublicJwk,
    extra: Record<string, unknown> = {},
  ): Record<string, unknown> {
    return this.req(TransactionName.RegisterTrustAnchor, {
      AnchorID: anchorId,
      Kind: kind,
      PublicKey: publicKey,
      Description: `${kind} key in the HSM`,
      ...extra,
    });
  }

  enrolRequest(deviceId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return this.req(TransactionName.EnrolDevice, {
      DeviceID: deviceId,
      Group: 'gw-edge',
      Location: 'plant-7/hall-2',
      Function: 'temperature gateway',
      Shard: 3,
      CertFingerprint: hex(`cert:${deviceId}`),
      EnrolmentNonceDigest: null,
      ...extra,
    });
  }

  keyRequest(keyId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return this.req(TransactionName.RegisterKey, {
      KeyID: keyId,
      Owner: { Type: 'application', ID: 'app-billing' },
      Algorithm: 'AES-256',
      Purpose: 'encrypt',
      RotationPolicy: {
        IntervalSeconds: 86_400,
        GraceSeconds: 3_600,
        RetentionSeconds: 7 * 86_400,
        Triggers: ['compromise'],
      },
      AccessPolicy: defaultPolicy(),
      InitialVersion: versionFields(keyId, 1),
      InitialState: 'active',
      NextKeyCommitment: null,
      ...extra,
    });
  }

  rotateRequest(keyId: string, current: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return this.req(TransactionName.RotateKey, {
      KeyID: keyId,
      CurrentVersion: current,
      NewVersion: versionFields(keyId, current + 1),
      NextKeyCommitment: null,
      NonceDigest: null,
      ...extra,
    });
  }

  attestationRequest(deviceId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return this.req(TransactionName.RecordAttestation, {
      DeviceID: deviceId,
      NonceDigest: hex(`nonce:${this.requestCount}`),
      EvidenceDigest: hex(`evidence:${this.requestCount}`),
      Status: 'affirming',
      PolicyID: 'policy-gw-1',
      VerifierID: 'verifier-1',
      IssuedAt: new Date(this.now).toISOString(),
      ...extra,
    });
  }

  /** Registers the three anchors (metadata bootstrap, the verifier's own, then the device CA). */
  async bootstrap(): Promise<void> {
    const { metadata, verifier, deviceCa } = this.signers;
    await this.write(
      this.ids.operator,
      TransactionName.RegisterTrustAnchor,
      this.anchorRequest(metadata.anchorId, 'metadata-signing', metadata.publicJwk),
    );
    // Org2 registers its own verifier key, proving possession of it.
    await this.write(
      this.ids.verifier,
      TransactionName.RegisterTrustAnchor,
      this.anchorRequest(verifier.anchorId, 'verifier', verifier.publicJwk),
      verifier,
    );
    await this.write(
      this.ids.operator,
      TransactionName.RegisterTrustAnchor,
      this.anchorRequest(deviceCa.anchorId, 'device-ca', deviceCa.publicJwk),
    );
  }
}

export function versionFields(keyId: string, version: number): Record<string, unknown> {
  return {
    Fingerprint: hex(`fp:${keyId}:${version}`),
    FingerprintType: 'spki-sha256',
    Pkcs11URI: `pkcs11:token=keyfleet;object=${keyId}-v${version};type=secret-key`,
    WrappedKeyDigest: null,
  };
}

export function defaultPolicy(): Record<string, unknown> {
  return {
    Read: [{ MSPID: 'Org1MSP', Role: 'application', ID: 'app-billing' }],
    Use: [{ MSPID: 'Org1MSP', Role: 'application', ID: 'app-billing' }],
    Rotate: [{ MSPID: 'Org1MSP', Role: 'operator', ID: null }],
    Administer: [{ MSPID: 'Org1MSP', Role: 'operator', ID: null }],
  };
}

/** Awaits a rejection and checks its code, and that the transaction attempted no write and no event. */
export async function expectRejected(harness: Harness, promise: Promise<unknown>, code: ErrorCode): Promise<Error> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected ${code}`).to.be.instanceOf(Error);
  const message = (caught as Error).message;
  expect(errorCodeOf(message), message).to.equal(code);
  expect(harness.lastRejectedWrites, 'writes attempted by a rejected transaction').to.equal(0);
  expect(harness.lastRejectedEvent, 'event set by a rejected transaction').to.equal(false);
  return caught as Error;
}

export { canonicalJson };
