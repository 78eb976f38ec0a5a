import 'reflect-metadata';
import {
  createHash,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  webcrypto,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as x509 from '@peculiar/x509';
import { expect } from 'chai';
import { CompactSign, compactVerify, decodeProtectedHeader } from 'jose';

import { newAgent } from './agent.js';
import { AgentError } from './errors.js';
import {
  deriveDeviceMasterKey,
  deriveKek,
  keyCheckValue,
  RotationMessageType,
  rotationNonceDigest,
  wrapKey,
} from './protocol.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

type Claims = Record<string, unknown>;

/**
 * The gateway's side of docs/protocol-rotation.md in software, behind `fetch`: enough to drive the
 * agent, and a `tamper` hook that rewrites a response's claims (re-signed or not) for the hostile cases.
 */
class FakeGateway {
  readonly kex = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  readonly metadata = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  caKeys!: webcrypto.CryptoKeyPair;
  caCert!: x509.X509Certificate;
  readonly keys = new Map<string, { version: number; key: Buffer }>();
  readonly acks: Claims[] = [];
  tamper: ((claims: Claims) => { claims: Claims; resign: boolean }) | null = null;

  async init(): Promise<void> {
    this.caKeys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
    this.caCert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=test device CA',
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
      keys: this.caKeys,
      signingAlgorithm: algorithm,
      extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
    });
  }

  readonly fetch = async (input: string, init?: { body?: string }): Promise<Response> => {
    const url = new URL(input);
    const body = JSON.parse(init?.body ?? '{}') as Record<string, string>;
    const json = (status: number, value: unknown) =>
      new Response(JSON.stringify(value), { status, headers: { 'content-type': 'application/json' } });
    if (url.pathname === '/v1/devices') {
      const csr = new x509.Pkcs10CertificateRequest(body.csr ?? '');
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: '02',
        subject: csr.subject,
        issuer: this.caCert.subject,
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 86_400_000),
        signingKey: this.caKeys.privateKey,
        publicKey: csr.publicKey,
        signingAlgorithm: algorithm,
      });
      return json(201, {
        deviceId: 'dev-9',
        certificate: cert.toString('pem'),
        caCertificate: this.caCert.toString('pem'),
        certificateFingerprint: createHash('sha256').update(Buffer.from(cert.rawData)).digest('hex'),
        transactionId: 'tx-enrol',
        keyExchangePublicKey: this.kex.publicKey.export({ format: 'pem', type: 'spki' }),
        metadataSigningPublicKey: this.metadata.publicKey.export({ format: 'pem', type: 'spki' }),
      });
    }
    const rotate = /^\/v1\/devices\/([^/]+)\/keys\/([^/]+)\/rotate(\/ack)?$/.exec(url.pathname);
    if (rotate === null) return json(404, { error: { code: 'NOT_FOUND', message: 'no route' } });
    const jws = body.ack ?? body.request ?? '';
    const certificate = new X509Certificate(Buffer.from((decodeProtectedHeader(jws).x5c ?? [])[0] ?? '', 'base64'));
    const claims = JSON.parse(
      Buffer.from((await compactVerify(jws, certificate.publicKey)).payload).toString(),
    ) as Claims;
    if (rotate[3] !== undefined) {
      this.acks.push(claims);
      return json(200, { transactionId: 'tx-ack', alreadyRecorded: false });
    }
    const keyId = String(claims.key_id);
    const version = (this.keys.get(keyId)?.version ?? 0) + 1;
    const key = randomBytes(32);
    this.keys.set(keyId, { version, key });
    const masterKey = deriveDeviceMasterKey(this.kex.privateKey, certificate.publicKey);
    const kek = deriveKek(masterKey, String(claims.device_id), keyId, version);
    let response: Claims = {
      device_id: claims.device_id,
      key_id: keyId,
      version,
      previous_version: claims.current_version,
      nonce_digest: rotationNonceDigest(String(claims.nonce)),
      wrapped_key: wrapKey(kek, key).toString('base64url'),
      kcv: keyCheckValue(key),
      transaction_id: `tx-${version}`,
      iat: Math.floor(Date.now() / 1000),
    };
    let signer: KeyObject = this.metadata.privateKey;
    let jwsOut: string;
    if (this.tamper !== null) {
      const tampered = this.tamper(response);
      const honest = await this.sign(response, signer);
      response = tampered.claims;
      if (!tampered.resign) {
        // Swap the payload under the honest signature.
        const [header, , signature] = honest.split('.');
        jwsOut = `${header ?? ''}.${Buffer.from(JSON.stringify(response)).toString('base64url')}.${signature ?? ''}`;
        return json(200, { response: jwsOut });
      }
      if (tampered.claims.__signer === 'rogue') {
        signer = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
        delete response.__signer;
      }
    }
    return json(200, { response: await this.sign(response, signer) });
  };

  sign(claims: Claims, key: KeyObject): Promise<string> {
    return new CompactSign(Buffer.from(JSON.stringify(claims)))
      .setProtectedHeader({ alg: 'ES256', kid: 'metadata-signing', typ: RotationMessageType.Response })
      .sign(key);
  }
}

async function agentError(promise: Promise<unknown>): Promise<AgentError> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(AgentError);
    return err as AgentError;
  }
  throw new Error('expected a rejection');
}

describe('agent: enrol, rotate, acknowledge against a software gateway', () => {
  let dir: string;
  let path: string;
  let gateway: FakeGateway;
  const agent = () =>
    newAgent({
      keystorePath: path,
      gatewayUrl: 'https://gw.test',
      deviceId: 'dev-9',
      // The agent calls fetch(url: string, { method, headers, body: string }) only.
      fetch: gateway.fetch as unknown as typeof fetch,
    });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyfleet-agent-'));
    path = join(dir, 'keystore.json');
    gateway = new FakeGateway();
    await gateway.init();
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('enrols: keeps its own key, the certificate, the CA, the pinned keys, in a 0600 file', async () => {
    const result = await agent().enrol('token-1');
    expect(result.deviceId).to.equal('dev-9');
    expect(statSync(path).mode & 0o777).to.equal(0o600);
    const stored = JSON.parse(readFileSync(path, 'utf8')) as Record<string, string>;
    const certificate = new X509Certificate(stored.certificate ?? '');
    expect(certificate.subject).to.include('CN=dev-9');
    expect(createPublicKey(stored.privateKey ?? '').export({ format: 'der', type: 'spki' })).to.deep.equal(
      certificate.publicKey.export({ format: 'der', type: 'spki' }),
    );
    expect(stored.metadataSigningPublicKey).to.include('PUBLIC KEY');
    expect((await agentError(agent().enrol('token-2'))).code).to.equal('AGENT_ALREADY_ENROLLED');
  });

  it('fetches, then rotates: the old key is gone, the new one is the gateway’s, each version acknowledged', async () => {
    const first = await agent().rotate('k1');
    expect(first).to.include({ version: 1, previousVersion: 0, acknowledged: true });
    const oldKey = (await agent().dataKey('k1'))?.key.toString('base64url') ?? 'missing';
    const second = await agent().rotate('k1');
    expect(second).to.include({ version: 2, previousVersion: 1, acknowledged: true });
    const held = await agent().dataKey('k1');
    expect(held?.key.equals(gateway.keys.get('k1')?.key ?? Buffer.alloc(0))).to.equal(true);
    expect(readFileSync(path, 'utf8')).not.to.include(oldKey);
    expect(gateway.acks.map((a) => a.version)).to.deep.equal([1, 2]);
    expect(gateway.acks[1]).to.include({ kcv: second.kcv, device_id: 'dev-9', key_id: 'k1' });
    expect(statSync(path).mode & 0o777).to.equal(0o600);
  });

  const hostile: { name: string; tamper: (c: Claims) => { claims: Claims; resign: boolean }; code: string }[] = [
    {
      name: 'a tampered wrapped key, re-signed',
      tamper: (c) => ({ claims: { ...c, wrapped_key: flip(String(c.wrapped_key)) }, resign: true }),
      code: 'AGENT_UNWRAP_FAILED',
    },
    {
      name: 'a tampered wrapped key under the honest signature',
      tamper: (c) => ({ claims: { ...c, wrapped_key: flip(String(c.wrapped_key)) }, resign: false }),
      code: 'AGENT_RESPONSE_SIGNATURE_INVALID',
    },
    {
      name: 'a response bound to another nonce',
      tamper: (c) => ({
        claims: { ...c, nonce_digest: rotationNonceDigest('another-nonce-of-22-chars') },
        resign: true,
      }),
      code: 'AGENT_NONCE_MISMATCH',
    },
    {
      name: 'a response signed by another key than the pinned one',
      tamper: (c) => ({ claims: { ...c, __signer: 'rogue' }, resign: true }),
      code: 'AGENT_RESPONSE_SIGNATURE_INVALID',
    },
    {
      name: 'a wrong key check value',
      tamper: (c) => ({ claims: { ...c, kcv: c.kcv === '000000' ? '000001' : '000000' }, resign: true }),
      code: 'AGENT_KCV_MISMATCH',
    },
    {
      name: 'a response for another device',
      tamper: (c) => ({ claims: { ...c, device_id: 'dev-8' }, resign: true }),
      code: 'AGENT_RESPONSE_MISMATCH',
    },
  ];

  for (const c of hostile) {
    it(`refuses ${c.name} (${c.code}): keystore unchanged, nothing acknowledged`, async () => {
      const before = readFileSync(path);
      const acks = gateway.acks.length;
      gateway.tamper = c.tamper;
      try {
        expect((await agentError(agent().rotate('k1'))).code).to.equal(c.code);
      } finally {
        gateway.tamper = null;
        // The fake advanced its own version; the device stays at the one it holds.
        const held = gateway.keys.get('k1');
        if (held !== undefined) gateway.keys.set('k1', { ...held, version: held.version - 1 });
      }
      expect(readFileSync(path).equals(before)).to.equal(true);
      expect(gateway.acks.length).to.equal(acks);
    });
  }

  it('refuses a keystore that others can read', async () => {
    chmodSync(path, 0o644);
    try {
      expect((await agentError(agent().rotate('k1'))).code).to.equal('AGENT_KEYSTORE_INSECURE');
    } finally {
      chmodSync(path, 0o600);
    }
  });

  it('carries a gateway refusal’s code', async () => {
    const refusing = newAgent({
      keystorePath: path,
      fetch: () =>
        Promise.resolve(
          new Response(
            JSON.stringify({ error: { code: 'LEDGER_REJECTED', detail: 'NONCE_REPLAYED', message: 'used' } }),
            {
              status: 409,
            },
          ),
        ),
    });
    const err = await agentError(refusing.rotate('k1'));
    expect([err.code, err.detail]).to.deep.equal(['AGENT_GATEWAY_REJECTED', 'NONCE_REPLAYED']);
  });
});

function flip(base64url: string): string {
  const bytes = Buffer.from(base64url, 'base64url');
  bytes[5] = (bytes[5] ?? 0) ^ 0x01;
  return bytes.toString('base64url');
}
