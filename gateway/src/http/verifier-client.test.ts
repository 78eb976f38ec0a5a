import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import { AttestationError } from '../attestation';
import { GatewayError } from '../errors';
import { newVerifierClient } from './verifier-client';

/**
 * What the operator gateway makes of the verifier's answers: its refusals keep their code (and so
 * their HTTP status); everything that is the verifier's own trouble is VERIFIER_UNAVAILABLE.
 */
describe('verifier client (the gateway forwarding to the verifier service)', () => {
  let server: Server;
  let url = '';
  let answer: { status: number; body: string; delayMs?: number } = { status: 200, body: '{}' };
  let seen: { method?: string; url?: string; body: string } = { body: '' };

  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        seen = {
          ...(req.method === undefined ? {} : { method: req.method }),
          ...(req.url === undefined ? {} : { url: req.url }),
          body,
        };
        setTimeout(() => {
          res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body);
        }, answer.delayMs ?? 0);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const address = server.address();
    url = `http://127.0.0.1:${String(typeof address === 'object' && address !== null ? address.port : 0)}/`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const client = () => newVerifierClient({ url, timeoutMs: 300 });
  const codeOf = (err: Error) =>
    err instanceof AttestationError || err instanceof GatewayError ? err.code : undefined;
  const caught = async (promise: Promise<unknown>): Promise<Error> => {
    try {
      await promise;
    } catch (err) {
      return err as Error;
    }
    return expect.fail('expected an error');
  };

  it('posts the challenge request and returns the answer', async () => {
    answer = { status: 201, body: JSON.stringify({ challenge: 'n', expiresAt: '2026-01-01T00:00:00.000Z' }) };
    expect(await client().challenge('dev-1')).to.deep.equal({ challenge: 'n', expiresAt: '2026-01-01T00:00:00.000Z' });
    expect(seen).to.deep.equal({ method: 'POST', url: '/v1/attestation/challenges', body: '{"deviceId":"dev-1"}' });
  });

  const error = (status: number, code: string, message = 'm', detail?: string) => ({
    status,
    body: JSON.stringify({ error: { code, message, ...(detail === undefined ? {} : { detail }) } }),
  });

  const rows: {
    name: string;
    answer: { status: number; body: string; delayMs?: number };
    is: typeof AttestationError | typeof GatewayError;
    code: string;
    detail?: string;
  }[] = [
    { name: 'a replayed nonce', answer: error(409, 'NONCE_REPLAYED'), is: AttestationError, code: 'NONCE_REPLAYED' },
    {
      name: 'a failed batch (503, attest again)',
      answer: error(503, 'BATCH_FAILED'),
      is: AttestationError,
      code: 'BATCH_FAILED',
    },
    { name: 'a schema refusal', answer: error(400, 'BAD_REQUEST'), is: GatewayError, code: 'BAD_REQUEST' },
    {
      name: 'a ledger refusal, with its detail',
      answer: error(403, 'LEDGER_REJECTED', 'm', 'ACCESS_DENIED'),
      is: GatewayError,
      code: 'LEDGER_REJECTED',
      detail: 'ACCESS_DENIED',
    },
    {
      name: 'a code the gateway does not know (4xx)',
      answer: error(418, 'NOT_A_KEYFLEET_CODE'),
      is: GatewayError,
      code: 'BAD_REQUEST',
    },
    {
      name: "the verifier's ledger down",
      answer: error(503, 'LEDGER_UNAVAILABLE'),
      is: GatewayError,
      code: 'VERIFIER_UNAVAILABLE',
    },
    {
      name: 'an internal error of the verifier',
      answer: error(500, 'INTERNAL'),
      is: GatewayError,
      code: 'VERIFIER_UNAVAILABLE',
    },
    {
      name: 'a proxy page that is not JSON',
      answer: { status: 502, body: '<html>' },
      is: GatewayError,
      code: 'VERIFIER_UNAVAILABLE',
    },
    {
      name: 'a success without the answer fields',
      answer: { status: 200, body: '{}' },
      is: GatewayError,
      code: 'VERIFIER_UNAVAILABLE',
    },
    { name: 'a JSON array', answer: { status: 200, body: '[]' }, is: GatewayError, code: 'VERIFIER_UNAVAILABLE' },
    {
      name: 'no answer within the timeout',
      answer: { status: 200, body: '{}', delayMs: 1000 },
      is: GatewayError,
      code: 'VERIFIER_UNAVAILABLE',
    },
  ];
  for (const row of rows) {
    it(`evidence answered with ${row.name} → ${row.code}`, async () => {
      answer = row.answer;
      const err = await caught(client().appraise('a.b.c'));
      expect(err, err.message).to.be.instanceOf(row.is);
      expect(codeOf(err)).to.equal(row.code);
      if (row.detail !== undefined) expect(err instanceof GatewayError ? err.detail : undefined).to.equal(row.detail);
    });
  }

  it('is VERIFIER_UNAVAILABLE when nothing listens at the URL', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const address = closed.address();
    await new Promise((r) => closed.close(r));
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    const err = await caught(
      newVerifierClient({ url: `http://127.0.0.1:${String(port)}`, timeoutMs: 1000 }).challenge('d'),
    );
    expect(err).to.be.instanceOf(GatewayError);
    expect(codeOf(err)).to.equal('VERIFIER_UNAVAILABLE');
  });
});
