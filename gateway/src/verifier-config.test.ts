import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from './config';
import { GatewayError } from './errors';
import { loadVerifierConfig } from './verifier-config';

function problems(load: () => unknown): string {
  try {
    load();
  } catch (err) {
    expect(err).to.be.instanceOf(GatewayError);
    expect((err as GatewayError).code).to.equal('CONFIG_INVALID');
    return (err as GatewayError).message;
  }
  return expect.fail('expected CONFIG_INVALID');
}

describe('verifier configuration (KEYFLEET_VERIFIER_*)', () => {
  it('has defaults for everything but the PIN: Org2, keyfleet-verifier, its own token and port', () => {
    const config = loadVerifierConfig({ KEYFLEET_VERIFIER_HSM_PIN: '1234' });
    expect(config.ledger).to.deep.equal({
      connectionProfile: '.fabric/network/connection.json',
      org: 'Org2',
      enrolmentId: 'keyfleet-verifier',
      chaincode: undefined,
    });
    expect(config.hsm).to.include({ tokenUri: 'pkcs11:token=keyfleet-verifier', pin: '1234' });
    expect(config.http).to.include({ host: '127.0.0.1', port: 8081 });
    expect(config.auth).to.deep.equal({ jwksFile: undefined, audience: 'keyfleet-verifier' });
    expect(config.attestation).to.deep.equal({
      challengeTtlSeconds: 120,
      batchSize: 1,
      batchDelayMs: 2000,
      policyId: 'keyfleet-appraisal-v1',
    });
  });

  it('reads the verifier’s own HSM cluster from KEYFLEET_VERIFIER_HSM_REPLICAS, never the gateway’s', () => {
    const pin = { KEYFLEET_VERIFIER_HSM_PIN: '1234' };
    expect(loadVerifierConfig(pin).hsm.replicas).to.deep.equal([]);
    expect(loadVerifierConfig({ ...pin, KEYFLEET_HSM_REPLICAS: 'pkcs11:token=keyfleet-2' }).hsm.replicas).to.deep.equal(
      [],
    );
    const replicas = 'pkcs11:token=keyfleet-verifier-2, pkcs11:token=keyfleet-verifier-3';
    expect(loadVerifierConfig({ ...pin, KEYFLEET_VERIFIER_HSM_REPLICAS: replicas }).hsm.replicas).to.deep.equal([
      'pkcs11:token=keyfleet-verifier-2',
      'pkcs11:token=keyfleet-verifier-3',
    ]);
    const refused: [string, string][] = [
      ['pkcs11:token=a;object=b', 'is not a token URI'],
      ['pkcs11:token=keyfleet-verifier', 'names a token twice, or the token of KEYFLEET_VERIFIER_HSM_URI'],
      ['pkcs11:token=x,pkcs11:token=x', 'names a token twice'],
    ];
    for (const [value, why] of refused) {
      expect(
        problems(() => loadVerifierConfig({ ...pin, KEYFLEET_VERIFIER_HSM_REPLICAS: value })),
        value,
      ).to.include(`KEYFLEET_VERIFIER_HSM_REPLICAS`);
      expect(
        problems(() => loadVerifierConfig({ ...pin, KEYFLEET_VERIFIER_HSM_REPLICAS: value })),
        value,
      ).to.include(why);
    }
  });

  it('reads the PIN from a file, never from the gateway variables', () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyfleet-vcfg-'));
    try {
      writeFileSync(join(dir, 'pin'), 'from-file\n');
      expect(loadVerifierConfig({ KEYFLEET_VERIFIER_HSM_PIN_FILE: join(dir, 'pin') }).hsm.pin).to.equal('from-file');
      expect(problems(() => loadVerifierConfig({ KEYFLEET_HSM_PIN: 'operator-pin' }))).to.include(
        'one of KEYFLEET_VERIFIER_HSM_PIN or KEYFLEET_VERIFIER_HSM_PIN_FILE is required',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('lists every problem at once, and never the PIN', () => {
    const message = problems(() =>
      loadVerifierConfig({
        KEYFLEET_VERIFIER_HSM_PIN: 'secret-pin',
        KEYFLEET_VERIFIER_HTTP_PORT: '70000',
        KEYFLEET_VERIFIER_BATCH_SIZE: '0',
        KEYFLEET_VERIFIER_CHALLENGE_TTL: 'soon',
        KEYFLEET_VERIFIER_POLICY_ID: 'has spaces',
      }),
    );
    for (const name of [
      'KEYFLEET_VERIFIER_HTTP_PORT',
      'KEYFLEET_VERIFIER_BATCH_SIZE',
      'KEYFLEET_VERIFIER_CHALLENGE_TTL',
      'KEYFLEET_VERIFIER_POLICY_ID',
    ]) {
      expect(message).to.include(name);
    }
    expect(message).to.not.include('secret-pin');
  });
});

describe('gateway configuration of the forwarded verifier', () => {
  const base = { KEYFLEET_HSM_PIN: '1234' };

  it('forwards to the verifier on this host by default', () => {
    expect(loadConfig(base).verifier).to.deep.equal({
      url: 'https://127.0.0.1:8081',
      caFile: '.keyfleet-verifier/tls-ca.pem',
      timeoutMs: 90_000,
    });
  });

  for (const [value, expected] of [
    ['ftp://verifier.example', 'KEYFLEET_VERIFIER_URL must be an http(s) URL'],
    ['https://user:pass@verifier.example', 'without credentials'],
    ['https://verifier.example/?x=1', 'must not have a query'],
    ['not a url', 'KEYFLEET_VERIFIER_URL must be an http(s) URL'],
  ] as const) {
    it(`refuses KEYFLEET_VERIFIER_URL=${value}`, () => {
      expect(problems(() => loadConfig({ ...base, KEYFLEET_VERIFIER_URL: value }))).to.include(expected);
    });
  }

  it('names the verifier setting for an attestation setting the gateway no longer has', () => {
    const message = problems(() =>
      loadConfig({ ...base, KEYFLEET_ATTESTATION_BATCH_SIZE: '8', KEYFLEET_CHALLENGE_TTL: '60' }),
    );
    expect(message).to.include(
      'KEYFLEET_ATTESTATION_BATCH_SIZE is a setting of the verifier service now: KEYFLEET_VERIFIER_BATCH_SIZE',
    );
    expect(message).to.include(
      'KEYFLEET_CHALLENGE_TTL is a setting of the verifier service now: KEYFLEET_VERIFIER_CHALLENGE_TTL',
    );
  });
});
