import { expect } from 'chai';
import type { FastifyInstance } from 'fastify';
import { ApiRole, type Principal } from '../auth/bearer';
import type { Services } from '../domain/services';
import type { ShardMapBody, ShardsApi } from '../domain/shards';
import { GatewayError, GatewayErrorCode } from '../errors';
import { newHttpServer } from './server';

/** The shard routes over a stand-in ShardsApi: what reaches it, and what the schema refuses first. */
describe('GET /v1/shards and PUT /v1/shards/map', () => {
  let app: FastifyInstance;
  const received: ShardMapBody[] = [];
  const shards: ShardsApi = {
    overview: () => Promise.resolve({ sharded: false, governanceChannel: null, map: null, shards: [] }),
    setMap: (body) => {
      received.push(body);
      return Promise.resolve({ transactionId: 'tx-1', record: { Revision: 1 } as never });
    },
  };
  const roles: Record<string, ApiRole> = { op: ApiRole.Operator, aud: ApiRole.Auditor, app: ApiRole.Application };

  before(async () => {
    app = await newHttpServer({
      // Only the shard routes are called here.
      services: { shards } as unknown as Services,
      authenticator: {
        authenticate: (authorization): Promise<Principal> => {
          const role = roles[authorization?.replace('Bearer ', '') ?? ''];
          return role === undefined
            ? Promise.reject(new GatewayError(GatewayErrorCode.Unauthenticated, 'no'))
            : Promise.resolve({ subject: 'alice', role });
        },
      },
      logger: false,
    });
  });
  after(() => app.close());
  beforeEach(() => {
    received.length = 0;
  });

  const good = {
    expectedRevision: 0,
    shards: ['keyfleet', 'keyfleet-shard1'],
    rules: [{ match: { group: 'meters', location: null, function: null }, shard: 'keyfleet-shard1' }],
    default: 'keyfleet',
  };
  const put = (body: unknown, as = 'op') =>
    app.inject({
      method: 'PUT',
      url: '/v1/shards/map',
      headers: { authorization: `Bearer ${as}` },
      payload: body as object,
    });

  it('passes a well-formed map to the service, and answers its write', async () => {
    const answer = await put(good);
    expect(answer.statusCode).to.equal(200);
    expect(answer.json()).to.deep.equal({ transactionId: 'tx-1', record: { Revision: 1 } });
    expect(received).to.deep.equal([good]);
  });

  it('is for operators only, the overview too', async () => {
    for (const as of ['aud', 'app']) {
      expect((await put(good, as)).statusCode, as).to.equal(403);
      const get = await app.inject({ method: 'GET', url: '/v1/shards', headers: { authorization: `Bearer ${as}` } });
      expect(get.statusCode, as).to.equal(403);
    }
    expect((await put(good, 'nobody')).statusCode).to.equal(401);
    expect(received).to.deep.equal([]);
  });

  const rule = good.rules[0];
  const hostile: [string, unknown][] = [
    ['no body fields', {}],
    ['a negative revision', { ...good, expectedRevision: -1 }],
    ['a revision as a string', { ...good, expectedRevision: '0' }],
    ['a fractional revision', { ...good, expectedRevision: 0.5 }],
    ['no shards', { ...good, shards: [] }],
    ['a shard twice', { ...good, shards: ['keyfleet', 'keyfleet'] }],
    ['an upper-case channel', { ...good, shards: ['Keyfleet'] }],
    ['a channel with a slash', { ...good, default: 'keyfleet/../x' }],
    ['a channel of 50 characters', { ...good, default: `k${'x'.repeat(49)}` }],
    ['65 shards', { ...good, shards: Array.from({ length: 65 }, (_, i) => `s${String(i)}`) }],
    ['a rule without match', { ...good, rules: [{ shard: 'keyfleet' }] }],
    ['a match missing a field', { ...good, rules: [{ ...rule, match: { group: 'meters', location: null } }] }],
    ['a match with an extra field', { ...good, rules: [{ ...rule, match: { ...rule?.match, owner: null } }] }],
    ['a group with a space', { ...good, rules: [{ ...rule, match: { ...rule?.match, group: 'a b' } }] }],
    ['a group as a number', { ...good, rules: [{ ...rule, match: { ...rule?.match, group: 7 } }] }],
    ['an unknown field', { ...good, owner: 'mallory' }],
    ['257 rules', { ...good, rules: Array.from({ length: 257 }, () => rule) }],
  ];
  for (const [name, body] of hostile) {
    it(`refuses ${name} with 400 BAD_REQUEST before the service`, async () => {
      const answer = await put(body);
      expect(answer.statusCode).to.equal(400);
      expect(answer.json<{ error: { code: string } }>().error.code).to.equal('BAD_REQUEST');
      expect(received).to.deep.equal([]);
    });
  }
});
