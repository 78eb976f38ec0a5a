import { expect } from 'chai';
import Fastify from 'fastify';

import { AttestationError, AttestationErrorCode } from '../attestation';
import { GatewayError, GatewayErrorCode, isGatewayError } from '../errors';
import { HsmError, HsmErrorCode } from '../hsm';
import { handleError } from './errors';

/** What a route that throws `err` answers, through the gateway's one error handler. */
async function answerTo(err: Error): Promise<{ status: number; body: { error: Record<string, string> } }> {
  const app = Fastify({ logger: false });
  app.setErrorHandler(handleError);
  app.get('/', () => Promise.reject(err));
  const response = await app.inject({ method: 'GET', url: '/' });
  await app.close();
  return { status: response.statusCode, body: response.json() };
}

describe('the gateway’s one error base', () => {
  it('an HsmError is a GatewayError that keeps its HSM code and CKR', () => {
    const err = new HsmError(HsmErrorCode.PinIncorrect, 'login failed', 'CKR_PIN_INCORRECT');
    expect(isGatewayError(err)).to.equal(true);
    expect([err.name, err.code, err.ckr, err.message]).to.deep.equal([
      'HsmError',
      'HSM_PIN_INCORRECT',
      'CKR_PIN_INCORRECT',
      'login failed (CKR_PIN_INCORRECT)',
    ]);
    expect(new HsmError(HsmErrorCode.Closed, 'closed').ckr).to.equal(undefined);
  });

  const rows: [string, Error, number, string, string | undefined][] = [
    [
      'an HSM error, whatever its code',
      new HsmError(HsmErrorCode.KeyNotFound, 'no object key:k1:v1'),
      500,
      'HSM_FAILURE',
      undefined,
    ],
    [
      'an HSM failure as the services wrap it',
      new GatewayError(GatewayErrorCode.HsmFailure, 'the HSM failed', HsmErrorCode.KeyExists),
      500,
      'HSM_FAILURE',
      undefined,
    ],
    [
      'a ledger refusal that is a conflict',
      new GatewayError(GatewayErrorCode.LedgerRejected, 'taken', 'KEY_EXISTS'),
      409,
      'LEDGER_REJECTED',
      'KEY_EXISTS',
    ],
    [
      'a ledger refusal of the caller’s input',
      new GatewayError(GatewayErrorCode.LedgerRejected, 'bad', 'INVALID_ARGUMENT'),
      400,
      'LEDGER_REJECTED',
      'INVALID_ARGUMENT',
    ],
    [
      'an attestation refusal',
      new AttestationError(AttestationErrorCode.NonceReplayed, 'used'),
      409,
      'NONCE_REPLAYED',
      undefined,
    ],
    ['an error of no base', new Error('boom at /srv/keyfleet/x'), 500, 'INTERNAL', undefined],
  ];
  for (const [what, err, status, code, detail] of rows) {
    it(`answers ${what} with ${status} ${code}`, async () => {
      const answer = await answerTo(err);
      expect([answer.status, answer.body.error.code, answer.body.error.detail]).to.deep.equal([status, code, detail]);
      if (status >= 500) {
        expect(answer.body.error.message).to.equal('the gateway could not complete the request');
      }
    });
  }
});
