import { IdSchema } from '@keyfleet/protocol';
import { dirname, resolve } from 'node:path';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { GatewayErrorCode, isGatewayError, type HttpsOptions } from '@keyfleet/gateway';
import type { AuditorLedger } from './auditor-ledger';
import { newFleetIndex } from './fleet-index';

export interface ConsoleServerOptions {
  readonly ledger: AuditorLedger;
  readonly logLevel?: string;
  /** TLS options (TLS 1.3, the console's certificate and key); plain HTTP without them. */
  readonly https?: HttpsOptions;
  /** The folder of the page (index.html, style.css); default: the package's `web/public`. */
  readonly publicDir?: string;
  /** The folder of the page's compiled scripts; default: the package's `dist/web/src`. */
  readonly scriptDir?: string;
}

const packageRoot = resolve(__dirname, '..');
/** Ledger identifiers: the one id grammar (@keyfleet/protocol ids.ts). */
const id = IdSchema;
const txId = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
const page = {
  pageSize: { type: 'integer', minimum: 1, maximum: 200, default: 50 },
  bookmark: { type: 'string', maxLength: 4096, default: '' },
} as const;

/**
 * The console's HTTP side: JSON reads of the ledger (as the auditor) and the static page. It
 * decides nothing about trust: the page verifies every record itself against the anchors the
 * auditor pinned, so a console that lied would be caught by its own page.
 */
export function buildConsoleServer(options: ConsoleServerOptions): FastifyInstance {
  const { ledger } = options;
  const logger = { level: options.logLevel ?? 'info' };
  // With `https`, Fastify makes an https.Server; the routes do not depend on which.
  const server = (
    options.https === undefined ? Fastify({ logger }) : Fastify({ logger, https: options.https })
  ) as FastifyInstance;

  void server.register(fastifyStatic, { root: options.publicDir ?? resolve(packageRoot, 'web', 'public') });
  void server.register(fastifyStatic, {
    root: options.scriptDir ?? resolve(packageRoot, 'dist', 'web', 'src'),
    prefix: '/js/',
    decorateReply: false,
    // Only the page's modules: not the source maps' neighbours, never a test file.
    allowedPath: (path) => path.endsWith('.mjs') && !path.includes('.test.'),
  });

  // Chart.js's own browser build, served as published (a maintained chart library, no bundler).
  void server.register(fastifyStatic, {
    root: dirname(require.resolve('chart.js')),
    prefix: '/vendor/',
    decorateReply: false,
    allowedPath: (path) => path === '/chart.umd.min.js',
  });

  server.setErrorHandler((err, _request, reply) => {
    if (isGatewayError(err)) {
      if (err.code === GatewayErrorCode.LedgerRejected) {
        const status = err.detail === 'INVALID_ARGUMENT' ? 400 : err.detail === 'ACCESS_DENIED' ? 403 : 502;
        return send(reply, status, err.detail ?? err.code, err.message);
      }
      server.log.error({ err }, 'ledger read failed');
      return send(reply, 502, err.code, 'the ledger could not be read');
    }
    const validation = (err as { validation?: unknown }).validation;
    if (validation !== undefined) return send(reply, 400, GatewayErrorCode.BadRequest, (err as Error).message);
    server.log.error({ err }, 'unexpected error');
    return send(reply, 500, 'INTERNAL', 'internal error');
  });

  const notFound = (reply: FastifyReply, what: string) =>
    send(reply, 404, GatewayErrorCode.NotFound, `${what} not found`);

  server.get('/healthz', async () => {
    await ledger.anchors();
    return { status: 'ok', ledger: true };
  });

  server.get('/api/anchors', () => ledger.anchors());

  const fleet = newFleetIndex(ledger, ledger.chaincode);
  server.get('/api/stats', () => fleet.stats());

  /** Keys due now, or within the next `within` seconds (up to a year): what rotations are coming. */
  server.get<{ Querystring: { within: number; pageSize: number; bookmark: string } }>(
    '/api/keys-due',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: { within: { type: 'integer', minimum: 0, maximum: 366 * 86400, default: 0 }, ...page },
        },
      },
    },
    (request) => {
      const at = new Date(Date.now() + request.query.within * 1000).toISOString();
      return ledger.keysDue(at, request.query.pageSize, request.query.bookmark);
    },
  );

  server.get<{ Querystring: { group: string; pageSize: number; bookmark: string } }>(
    '/api/devices',
    { schema: { querystring: { type: 'object', required: ['group'], properties: { group: id, ...page } } } },
    (request) => ledger.devicesByGroup(request.query.group, request.query.pageSize, request.query.bookmark),
  );

  server.get<{ Params: { id: string } }>(
    '/api/devices/:id',
    { schema: { params: { type: 'object', properties: { id } } } },
    async (request, reply) => {
      const [record, history] = await Promise.all([
        ledger.device(request.params.id),
        ledger.deviceHistory(request.params.id),
      ]);
      if (record === null) return notFound(reply, `device ${request.params.id}`);
      // Oldest first: the reverse of Fabric's newest-first block order, not a sort by timestamps.
      return { Record: record, History: history.reverse() };
    },
  );

  server.get<{ Params: { id: string }; Querystring: { pageSize: number; bookmark: string } }>(
    '/api/devices/:id/attestations',
    { schema: { params: { type: 'object', properties: { id } }, querystring: { type: 'object', properties: page } } },
    (request) => ledger.attestations(request.params.id, request.query.pageSize, request.query.bookmark),
  );

  server.get<{ Params: { id: string } }>(
    '/api/keys/:id',
    { schema: { params: { type: 'object', properties: { id } } } },
    async (request, reply) => {
      const [record, history] = await Promise.all([
        ledger.key(request.params.id),
        ledger.keyHistory(request.params.id),
      ]);
      if (record === null) return notFound(reply, `key ${request.params.id}`);
      return { Record: record, History: history.reverse() };
    },
  );

  server.get<{ Params: { id: string } }>(
    '/api/batches/:id',
    { schema: { params: { type: 'object', properties: { id } } } },
    async (request, reply) => (await ledger.batch(request.params.id)) ?? notFound(reply, `batch ${request.params.id}`),
  );

  server.get<{ Params: { id: string } }>(
    '/api/transactions/:id',
    { schema: { params: { type: 'object', properties: { id: txId } } } },
    async (request, reply) =>
      (await ledger.transaction(request.params.id)) ?? notFound(reply, `transaction ${request.params.id}`),
  );

  /** What an id names: a device, a key, a batch or a transaction (in that order). */
  server.get<{ Querystring: { q: string } }>(
    '/api/search',
    { schema: { querystring: { type: 'object', required: ['q'], properties: { q: id } } } },
    async (request, reply) => {
      const q = request.query.q;
      const found: { Kind: string; ID: string }[] = [];
      const [device, key, batch] = await Promise.all([ledger.device(q), ledger.key(q), ledger.batch(q)]);
      if (device) found.push({ Kind: 'device', ID: q });
      if (key) found.push({ Kind: 'key', ID: q });
      if (batch) found.push({ Kind: 'batch', ID: q });
      if (/^[0-9a-f]{64}$/.test(q) && (await ledger.transaction(q)) !== null)
        found.push({ Kind: 'transaction', ID: q });
      return found.length > 0 ? { Results: found } : notFound(reply, q);
    },
  );

  return server;
}

function send(reply: FastifyReply, status: number, code: string, message: string) {
  return reply.code(status).send({ error: { code, message } });
}
