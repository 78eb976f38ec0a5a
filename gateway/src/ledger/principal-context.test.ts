import { expect } from 'chai';
import { compactVerify } from 'jose';
import type { Authenticator } from '../auth/bearer';
import { newBaseServer } from '../http/base';
import { newSoftwareKey } from '../testing/software-key';
import { newLedgerClient } from './ledger-client';
import { asPrincipal, currentPrincipal, devicePrincipal, gatewayService } from './principal-context';
import type { LedgerTransport } from './transport';

/** A transport that keeps what was submitted and answers `{}`. */
function recordingTransport(): LedgerTransport & { sent: { request: Record<string, unknown>; jws: string }[] } {
  const sent: { request: Record<string, unknown>; jws: string }[] = [];
  return {
    sent,
    submit: (_transaction, [payload = '', jws = '']) => {
      sent.push({ request: JSON.parse(payload) as Record<string, unknown>, jws });
      return Promise.resolve({ payload: new TextEncoder().encode('{}'), transactionId: `tx-${sent.length}` });
    },
    evaluate: () => Promise.resolve(new Uint8Array()),
    close: () => Promise.resolve(),
  };
}

describe('who asked: the request-scoped principal', () => {
  const key = newSoftwareKey('metadata');
  const alice = { Kind: 'operator', ID: 'alice' } as const;

  it('signs the principal in context into the request, inside the JWS', async () => {
    const transport = recordingTransport();
    const ledger = newLedgerClient({ transport, signingKey: key, anchorId: 'hsm-metadata-1' });
    await asPrincipal(alice, () => ledger.write('SuspendDevice', { DeviceID: 'dev-1', Reason: 'x' }));
    const [sent] = transport.sent;
    expect(sent?.request.Principal).to.deep.equal(alice);
    const verified = await compactVerify(sent?.jws ?? '', key.publicKey);
    expect(JSON.parse(new TextDecoder().decode(verified.payload))).to.deep.include({ Principal: alice });
  });

  it('refuses a write with no principal in context (a forgotten path fails, it is not attributed)', async () => {
    const transport = recordingTransport();
    const ledger = newLedgerClient({ transport, signingKey: key, anchorId: 'hsm-metadata-1' });
    let error: unknown;
    try {
      await ledger.write('SuspendDevice', { DeviceID: 'dev-1', Reason: 'x' });
    } catch (err) {
      error = err;
    }
    expect(error).to.be.instanceOf(Error);
    expect((error as Error).message).to.match(/outside any principal context/);
    expect(transport.sent).to.have.length(0);
  });

  it('keeps the principal across awaits and timers, and nested work names its own', async () => {
    const seen = await asPrincipal(devicePrincipal('dev-7'), async () => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      const outer = currentPrincipal();
      const inner = await asPrincipal(gatewayService('scheduler'), () => Promise.resolve(currentPrincipal()));
      return { outer, inner, after: currentPrincipal() };
    });
    expect(seen).to.deep.equal({
      outer: { Kind: 'device', ID: 'dev-7' },
      inner: { Kind: 'service', ID: 'gateway.scheduler' },
      after: { Kind: 'device', ID: 'dev-7' },
    });
  });

  it('runs an authenticated HTTP request on behalf of its caller; an auditor gets none', async () => {
    const subjects: Record<string, { subject: string; role: 'operator' | 'application' | 'auditor' }> = {
      'Bearer op': { subject: 'alice', role: 'operator' },
      'Bearer app': { subject: 'billing', role: 'application' },
      'Bearer aud': { subject: 'carol', role: 'auditor' },
    };
    const authenticator: Authenticator = {
      authenticate: (header) => {
        const principal = subjects[header ?? ''];
        return principal === undefined ? Promise.reject(new Error('no')) : Promise.resolve(principal);
      },
    };
    const app = await newBaseServer({
      authenticator,
      health: () => Promise.resolve({ hsm: true, ledger: true }),
      logger: false,
      service: { title: 't', metricsPrefix: 't_' },
    });
    app.get('/who', { config: { roles: ['operator', 'application', 'auditor'] } }, async () => {
      await new Promise((resolve) => setImmediate(resolve));
      try {
        return currentPrincipal();
      } catch {
        return { none: true };
      }
    });
    const who = async (authorization: string) =>
      (await app.inject({ method: 'GET', url: '/who', headers: { authorization } })).json<unknown>();
    expect(await who('Bearer op')).to.deep.equal({ Kind: 'operator', ID: 'alice' });
    expect(await who('Bearer app')).to.deep.equal({ Kind: 'application', ID: 'billing' });
    expect(await who('Bearer aud')).to.deep.equal({ none: true });
    await app.close();
  });
});
