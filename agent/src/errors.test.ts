import { expect } from 'chai';

import { AgentError, isAgentError } from './errors.js';
import { HttpError, HttpErrorCode } from './http/client.js';
import { KeyClientError, KeyClientErrorCode } from './key-client.js';

describe('the agent’s one error base', () => {
  it('the key client’s and the HTTP client’s errors are AgentErrors that keep their codes', () => {
    const keyClient = new KeyClientError(KeyClientErrorCode.GatewayRejected, 'refused', 'NOT_FOUND');
    const http = new HttpError(0, HttpErrorCode.Unreachable, 'cannot reach the gateway');
    for (const err of [keyClient, http]) {
      expect(err).to.be.instanceOf(AgentError);
      expect(isAgentError(err)).to.equal(true);
    }
    expect([keyClient.name, keyClient.code, keyClient.detail]).to.deep.equal([
      'KeyClientError',
      'KEY_CLIENT_GATEWAY_REJECTED',
      'NOT_FOUND',
    ]);
    expect([http.name, http.code, http.status, http.answered]).to.deep.equal([
      'HttpError',
      'SERVER_UNREACHABLE',
      0,
      false,
    ]);
  });
});
