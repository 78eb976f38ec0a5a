#!/usr/bin/env node
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  type AttestationBatchRecord,
  type DeviceRecord,
  Limits,
  type PublicJwk,
  type TrustAnchorRecord,
} from '@keyfleet/protocol';
import { verifyBatchRecordSignature, verifyProofAgainstLedger } from '../attestation/audit';
import { tlsTrustFromEnv, type TlsTrust } from '@keyfleet/agent';
import { ApiRole } from '../auth/bearer';
import { enrolmentTokenBody, keyBody } from '../http/schemas';
import { openLedgerReader, type LedgerReader } from '../ledger/ledger-reader';
import { ApiError, newApiClient, type ApiClient } from './api-client';
import { bearerHeader, createCredentials, readCredentials } from './credentials';
import { auditRecord, auditTransaction, recordText, transactionText } from './ledger-audit';
import type { ShardOverview } from '../domain/shards';
import type { ShardMoveJob } from '../domain/shard-moves';

const usage = `keyfleet — operate and audit a keyfleet gateway

Usage: keyfleet <command> [arguments] [--json]

Credentials (bearer-token keys; the private key never leaves the credentials file):
  credentials create <subject> --role operator|auditor|application --out FILE [--jwks FILE]
        (a running gateway picks the new key up from its JWKS file at the next request)
  token       prints an Authorization header value for KEYFLEET_CREDENTIALS, e.g. for curl:
              curl -H "Authorization: $(keyfleet token)" …

Devices:
  devices token <device-id> --group G --location L --function F [--ttl SECONDS]
        (the shard map places the device on its shard at enrolment: see 'shards')
  devices enrol --token TOKEN --csr FILE
  devices get <device-id>
  devices list --group G [--page-size N] [--bookmark B] [--json]
        one row per device; --json prints the page (items, bookmark) for scripts
  devices suspend|reinstate|revoke <device-id> --reason TEXT

Keys:
  keys register <key-id> --algorithm AES-256|EC-P256 --purpose encrypt|sign|wrap
                --owner application:ID|device:ID --rotate-every SECONDS [--retention SECONDS]
                [--policy FILE]      (access policy JSON: {read,use,rotate,administer})
  keys get <key-id>
  keys history <key-id>
  keys compromise <key-id> --version N --reason TEXT
        marks one version compromised (KMIP): no more encrypt/sign with it; decrypt/verify only
        with allowCompromised (docs/key-service.md §3); the key becomes due for rotation

  devices provision-key <device-id> --key KEY-ID     (a device-owned AES-256 key, made in the HSM)

HSM cluster (docs/hsm-cluster.md):
  hsm-cluster status              the primary, the in-sync and the lost tokens, the KEK check value
  hsm-cluster join <token-label>  joins a token to the running gateway's cluster (after the SO's
                                  ceremony gave it the cluster KEK): copies what it lacks, on the ledger

Shards:
  shards      the shard map (revision, rules, default) and, per shard, its channel, devices, keys and
              block height; --json prints the same for scripts (one shard, no map, when unsharded)
  shards move --group G --to CHANNEL
        sends a group to a shard channel while load runs: a new map revision, then each of the
        group's devices and its keys moved by the two-phase protocol (prepare, accept, commit);
        waits for the job and prints what moved, how long it took and any batch that failed
  shards rebalance      moves every device the current map places elsewhere (after a map change)
  shards job <job-id>   a move job's state and report
  shards set-map --file FILE [--expected-revision N]
              writes the shard map (JSON: {shards, rules: [{match: {group, location, function}, shard}],
              default}; null matches anything) on the governance channel; new enrolments follow it.
              Without --expected-revision, the revision read just before (another writer in between
              makes the ledger refuse it)

Attestation:
  reference-values set <group> --policy-id ID --file FILE   (JSON: [{name, algorithm, digest}])
  reference-values get <group>

Audit (a history is printed oldest first):
  audit device <device-id>
  audit key <key-id>
  audit anchors
  audit verify-proof --result FILE --proof FILE [--anchor FILE]
        checks an attestation result's inclusion proof against its batch on the ledger, and the
        batch's signature against the verifier's public key (--anchor: a pinned PEM; without it,
        the anchor the gateway reports)
  audit tx <tx-id> [--anchor FILE] [--org Org2] [--identity auditor]
        reads the transaction from its block through Fabric's qscc, as an organisation's own
        identity (not through the gateway): block, time, creator, function, who asked; with
        --anchor (a pinned PEM public key) also checks the HSM signature over the request
  audit record <file> --anchor FILE [--org Org2] [--identity auditor]
        checks a device, key or attestation record (JSON, as 'peer chaincode query' or the
        gateway printed it) against the ledger: its transaction is valid in its block, carries
        the record's JWS, signed by the pinned anchor for the same principal, and wrote exactly
        this record; exits 1 and names the first problem otherwise

Environment:
  KEYFLEET_URL          gateway base URL (default https://127.0.0.1:8080)
  KEYFLEET_CA_FILE      the operator's CA certificate that the gateway's HTTPS certificate chains to
                        (npm start writes .keyfleet/device-ca.pem)
  KEYFLEET_CREDENTIALS  credentials file for bearer tokens (made by 'keyfleet credentials create';
                        npm start makes .keyfleet/operator.json)
  KEYFLEET_AUTH_AUDIENCE  token audience (default keyfleet-gateway)
  KEYFLEET_AUTH_JWKS    JWKS file that 'credentials create' adds to (default .keyfleet/auth/jwks.json)
  KEYFLEET_FABRIC_CONNECTION  the network's connection description: for 'audit tx|record' (default
                        .fabric/network/connection.json), and when set, the blocks in 'audit device|key'
`;

/** GET /v1/hsm/cluster's answer. */
interface ClusterStatus {
  readonly primary: string;
  readonly inSync: readonly string[];
  readonly lost: readonly string[];
  readonly kekCheckValue: string;
}

function clusterText(c: ClusterStatus): string {
  return [
    `primary   ${c.primary}`,
    `in sync   ${c.inSync.join(', ')}`,
    `lost      ${c.lost.length === 0 ? '-' : c.lost.join(', ')}`,
    `KEK check ${c.kekCheckValue}`,
  ].join('\n');
}

interface Output {
  json: boolean;
  print(value: unknown, human?: (value: never) => string): void;
}

/** Where the command line writes: `process`, or a test's buffers. */
export interface CliIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

/** The codes of the command line's own errors (the gateway's come in an {@link ApiError}). */
export const CliErrorCode = {
  /** A missing, malformed or out-of-range option or argument. */
  InvalidArgument: 'INVALID_ARGUMENT',
  /** KEYFLEET_CREDENTIALS is unset, empty, or does not name a readable credentials file. */
  CredentialsRequired: 'CREDENTIALS_REQUIRED',
  /** KEYFLEET_CA_FILE does not name a readable CA certificate file. */
  CaRequired: 'CA_REQUIRED',
} as const;
export type CliErrorCode = (typeof CliErrorCode)[keyof typeof CliErrorCode];

/** A problem with the command line or its environment: exit status 2, nothing sent to the gateway. */
class UsageError extends Error {
  constructor(
    message: string,
    readonly code: CliErrorCode = CliErrorCode.InvalidArgument,
  ) {
    super(message);
  }
}

/**
 * Whole-number options and what the gateway accepts for each: the bounds of its request schemas
 * (and the ledger's page size), so that a bad value is refused here, naming the option.
 */
const wholeNumbers: Record<string, WholeNumberRange> = {
  '--ttl': within(enrolmentTokenBody.properties.ttlSeconds, 'seconds'),
  '--page-size': { min: 1, max: Limits.PageSize },
  '--expected-revision': { min: 0, max: Number.MAX_SAFE_INTEGER },
  '--rotate-every': within(keyBody.properties.rotationIntervalSeconds, 'seconds'),
  '--retention': within(keyBody.properties.retentionSeconds, 'seconds'),
  '--version': { min: 1, max: 9_999_999 },
};

interface WholeNumberRange {
  readonly min: number;
  readonly max: number;
  readonly unit?: string;
}

function within(schema: { minimum: number; maximum: number }, unit?: string): WholeNumberRange {
  return { min: schema.minimum, max: schema.maximum, ...(unit === undefined ? {} : { unit }) };
}

function wholeNumberProblem(option: string): string {
  const range = wholeNumbers[option];
  if (range === undefined) return `${option} must be a whole number`;
  return `${option} must be a whole number${range.unit === undefined ? '' : ` of ${range.unit}`} from ${range.min} to ${range.max}`;
}

/** The value of a whole-number option, in the gateway's range, or undefined when not given. */
function wholeNumber(option: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const range = wholeNumbers[option];
  const n = /^\d{1,16}$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || (range !== undefined && (n < range.min || n > range.max))) {
    throw new UsageError(wholeNumberProblem(option));
  }
  return n;
}

/**
 * `--ttl -5` as `--ttl=-5`: parseArgs takes an option value that starts with '-' only in that form,
 * and would otherwise refuse it with its own message; this way the range check names the option.
 */
function joinNegativeNumbers(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const next = argv[i + 1];
    if (arg === '--') return out.concat(argv.slice(i));
    if (arg in wholeNumbers && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** One line naming the option for Node's parseArgs errors (whose own text explains parseArgs). */
function parseArgsProblem(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  // "Option '-h, --help' …": the long name.
  const option = /'(?:-\w, )?(--?[A-Za-z][\w-]*)/.exec(message)?.[1];
  if (option === undefined) return message;
  if (option in wholeNumbers) return wholeNumberProblem(option);
  switch ((err as { code?: unknown }).code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${option}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/does not take an argument/.test(message)) return `${option} takes no value`;
      if (/ambiguous/.test(message))
        return `${option} needs a value (one that starts with '-' is written ${option}=VALUE)`;
      return `${option} needs a value`;
    default:
      return message;
  }
}

const credentialsHint =
  "set KEYFLEET_CREDENTIALS to a credentials file made by 'keyfleet credentials create <subject> --role operator --out FILE' (npm start makes .keyfleet/operator.json)";

/** The bearer header for KEYFLEET_CREDENTIALS; a missing setting or unreadable file says what to set. */
async function credentialsHeader(file: string | undefined, audience: string): Promise<string> {
  if (file === undefined || file === '') {
    const state = file === undefined ? 'is not set' : 'is empty';
    throw new UsageError(`KEYFLEET_CREDENTIALS ${state}: ${credentialsHint}`, CliErrorCode.CredentialsRequired);
  }
  let credentials: ReturnType<typeof readCredentials>;
  try {
    credentials = readCredentials(file);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const why = typeof code === 'string' ? code : err instanceof Error ? err.message : String(err);
    throw new UsageError(
      `KEYFLEET_CREDENTIALS=${file} cannot be used (${why}): ${credentialsHint}`,
      CliErrorCode.CredentialsRequired,
    );
  }
  return bearerHeader(credentials, audience);
}

/** The operator's CA certificate from KEYFLEET_CA_FILE; an unreadable file is a usage error. */
function trustFromEnv(env: NodeJS.ProcessEnv): TlsTrust {
  try {
    return tlsTrustFromEnv(env);
  } catch (err) {
    throw new UsageError(
      `${(err as Error).message}: set KEYFLEET_CA_FILE to the operator's CA certificate (npm start writes .keyfleet/device-ca.pem)`,
      CliErrorCode.CaRequired,
    );
  }
}

/**
 * Runs one command line: the exit status (0 done, 1 failed or refused by the gateway, 2 a usage or
 * credentials problem), with the output on `io.stdout` and one line per error on `io.stderr`.
 */
export async function run(argv: readonly string[], env: NodeJS.ProcessEnv, io: CliIo = process): Promise<number> {
  try {
    return await main(argv, env, io);
  } catch (err) {
    if (err instanceof UsageError) {
      const help = err.code === CliErrorCode.InvalidArgument ? ' (keyfleet --help lists the commands)' : '';
      io.stderr.write(`keyfleet: ${err.code}: ${err.message}${help}\n`);
      return 2;
    }
    if (err instanceof ApiError) {
      io.stderr.write(`keyfleet: ${err.code}${err.detail ? ` (${err.detail})` : ''}: ${err.message}\n`);
      return 1;
    }
    io.stderr.write(`keyfleet: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

/** Every option of every command; each command reads the ones it takes. */
const options = {
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
  role: { type: 'string' },
  out: { type: 'string' },
  jwks: { type: 'string' },
  group: { type: 'string' },
  location: { type: 'string' },
  function: { type: 'string' },
  ttl: { type: 'string' },
  token: { type: 'string' },
  csr: { type: 'string' },
  'page-size': { type: 'string' },
  bookmark: { type: 'string' },
  'expected-revision': { type: 'string' },
  reason: { type: 'string' },
  version: { type: 'string' },
  algorithm: { type: 'string' },
  purpose: { type: 'string' },
  owner: { type: 'string' },
  'rotate-every': { type: 'string' },
  retention: { type: 'string' },
  policy: { type: 'string' },
  key: { type: 'string' },
  'policy-id': { type: 'string' },
  file: { type: 'string' },
  result: { type: 'string' },
  org: { type: 'string' },
  identity: { type: 'string' },
  proof: { type: 'string' },
  anchor: { type: 'string' },
  to: { type: 'string' },
} as const;

function parseCommandLine(argv: readonly string[]) {
  try {
    return parseArgs({
      args: joinNegativeNumbers(argv),
      allowPositionals: true,
      options,
    });
  } catch (err) {
    throw new UsageError(parseArgsProblem(err));
  }
}

async function main(argv: readonly string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandLine(argv);
  const [noun, verb, target] = positionals;
  if (values.help || noun === undefined) {
    io.stdout.write(usage);
    return noun === undefined && !values.help ? 2 : 0;
  }
  const out: Output = {
    json: values.json,
    print(value, human) {
      io.stdout.write(values.json || !human ? JSON.stringify(value, null, 2) + '\n' : human(value as never) + '\n');
    },
  };
  const audience = env.KEYFLEET_AUTH_AUDIENCE ?? 'keyfleet-gateway';
  const required = (name: string, value: string | undefined): string => {
    if (value === undefined || value === '') throw new UsageError(`${name} is required`);
    return value;
  };

  if (noun === 'credentials' && verb === 'create') {
    const role = required('--role', values.role);
    if (!Object.values<string>(ApiRole).includes(role))
      throw new UsageError('--role must be operator, auditor or application');
    const jwks = values.jwks ?? env.KEYFLEET_AUTH_JWKS ?? '.keyfleet/auth/jwks.json';
    const credentials = await createCredentials(
      required('<subject>', target),
      role as ApiRole,
      required('--out', values.out),
      jwks,
    );
    out.print(
      { subject: credentials.subject, role: credentials.role, kid: credentials.kid, jwks },
      (c: { kid: string }) =>
        `created credentials for ${credentials.subject} (${credentials.role}), key ${c.kid}, added to ${jwks}`,
    );
    return 0;
  }

  const credentialsFile = env.KEYFLEET_CREDENTIALS;
  if (noun === 'token') {
    io.stdout.write(`${await credentialsHeader(credentialsFile, audience)}\n`);
    return 0;
  }
  const baseUrl = env.KEYFLEET_URL ?? 'https://127.0.0.1:8080';
  const tls = trustFromEnv(env);
  // Read when a request is made, so that a bad option is reported first; enrolment needs none.
  const api: ApiClient = newApiClient({
    baseUrl,
    tls,
    authorization: () => credentialsHeader(credentialsFile, audience),
  });
  const publicApi: ApiClient = newApiClient({ baseUrl, tls });
  const id = () => encodeURIComponent(required('<id>', target));

  switch (`${noun} ${verb ?? ''}`) {
    case 'devices token': {
      const token = await api.request('POST', '/v1/enrolment-tokens', {
        deviceId: required('<device-id>', target),
        group: required('--group', values.group),
        location: required('--location', values.location),
        function: required('--function', values.function),
        ...(values.ttl === undefined ? {} : { ttlSeconds: wholeNumber('--ttl', values.ttl) }),
      });
      // Only the token on stdout, so that TOKEN=$(keyfleet devices token …) holds just the token.
      out.print(token, (t: { token: string; expiresAt: string }) => {
        io.stderr.write(`(expires ${t.expiresAt})\n`);
        return t.token;
      });
      return 0;
    }
    case 'devices enrol': {
      const enrolled = await publicApi.request('POST', '/v1/devices', {
        enrolmentToken: required('--token', values.token),
        csr: readFileSync(required('--csr', values.csr), 'utf8'),
      });
      out.print(
        enrolled,
        (e: { deviceId: string; transactionId: string; certificate: string }) =>
          `enrolled ${e.deviceId} (transaction ${e.transactionId})\n${e.certificate}`,
      );
      return 0;
    }
    case 'devices get':
      out.print(await api.request('GET', `/v1/devices/${id()}`), (r: { record: unknown }) => describe(r.record));
      return 0;
    case 'devices list': {
      const query = new URLSearchParams({ group: required('--group', values.group) });
      const size = wholeNumber('--page-size', values['page-size']);
      if (size !== undefined) query.set('pageSize', String(size));
      if (values.bookmark !== undefined) query.set('bookmark', values.bookmark);
      out.print(
        await api.request('GET', `/v1/devices?${query.toString()}`),
        (p: { items: DeviceRecord[]; bookmark: string }) =>
          [deviceTable(p.items), p.bookmark === '' ? '(end)' : `(more: --bookmark ${p.bookmark})`].join('\n'),
      );
      return 0;
    }
    case 'devices suspend':
    case 'devices reinstate':
    case 'devices revoke': {
      const written = await api.request('POST', `/v1/devices/${id()}/${verb ?? ''}`, {
        reason: required('--reason', values.reason),
      });
      out.print(
        written,
        (w: { transactionId: string }) => `${verb ?? ''}: ${target ?? ''} (transaction ${w.transactionId})`,
      );
      return 0;
    }
    case 'keys register': {
      const [ownerType, ownerId] = required('--owner', values.owner).split(':', 2);
      const policy: unknown = values.policy === undefined ? undefined : JSON.parse(readFileSync(values.policy, 'utf8'));
      const written = await api.request('POST', '/v1/keys', {
        keyId: required('<key-id>', target),
        algorithm: required('--algorithm', values.algorithm),
        purpose: required('--purpose', values.purpose),
        owner: { type: ownerType, id: ownerId },
        rotationIntervalSeconds: wholeNumber('--rotate-every', required('--rotate-every', values['rotate-every'])),
        ...(values.retention === undefined ? {} : { retentionSeconds: wholeNumber('--retention', values.retention) }),
        accessPolicy: policy ?? defaultPolicy(ownerType, ownerId),
      });
      out.print(
        written,
        (w: { transactionId: string }) => `registered ${target ?? ''} (transaction ${w.transactionId})`,
      );
      return 0;
    }
    case 'keys get':
      out.print(await api.request('GET', `/v1/keys/${id()}`), (r: { record: unknown }) => describe(r.record));
      return 0;
    case 'keys history':
      out.print(await api.request<History>('GET', `/v1/audit/keys/${id()}`), (h: History) => historyText(h));
      return 0;
    case 'keys compromise': {
      const version = wholeNumber('--version', required('--version', values.version)) ?? 0;
      const marked = await api.request('POST', `/v1/keys/${id()}/versions/${String(version)}/compromise`, {
        reason: required('--reason', values.reason),
      });
      out.print(marked, (m: { outcome: string; compromisedAt: string; transactionId: string | null }) =>
        m.transactionId === null
          ? `${target ?? ''} version ${String(version)} was already compromised (at ${m.compromisedAt})`
          : `${target ?? ''} version ${String(version)} compromised (transaction ${m.transactionId})`,
      );
      return 0;
    }
    case 'devices provision-key': {
      const provisioned = await api.request('POST', `/v1/devices/${id()}/keys`, {
        keyId: required('--key', values.key),
      });
      out.print(
        provisioned,
        (p: { keyId: string; transactionId: string }) => `provisioned ${p.keyId} (transaction ${p.transactionId})`,
      );
      return 0;
    }
    case 'hsm-cluster status':
      out.print(await api.request('GET', '/v1/hsm/cluster'), (c: ClusterStatus) => clusterText(c));
      return 0;
    case 'hsm-cluster join': {
      const joined = await api.request('POST', '/v1/hsm/cluster/members', { token: required('<token-label>', target) });
      out.print(
        joined,
        (j: { token: string; copied: unknown[]; removed: unknown[]; cluster: ClusterStatus }) =>
          `joined ${j.token}: ${String(j.copied.length)} keys copied, ${String(j.removed.length)} stale keys destroyed\n` +
          clusterText(j.cluster),
      );
      return 0;
    }
    case 'shards move':
    case 'shards rebalance': {
      const started =
        verb === 'move'
          ? await api.request<ShardMoveJob>('POST', '/v1/shards/moves', {
              group: required('--group', values.group),
              to: required('--to', values.to),
            })
          : await api.request<ShardMoveJob>('POST', '/v1/shards/rebalance');
      let job = started;
      while (job.state === 'running') {
        await new Promise((done) => setTimeout(done, 1_000));
        job = await api.request<ShardMoveJob>('GET', `/v1/shards/moves/${encodeURIComponent(started.jobId)}`);
      }
      out.print(job, shardMoveText);
      return job.state === 'done' && job.report?.failed.length === 0 ? 0 : 1;
    }
    case 'shards job':
      out.print(await api.request<ShardMoveJob>('GET', `/v1/shards/moves/${id()}`), shardMoveText);
      return 0;
    case 'shards ':
      out.print(await api.request<ShardOverview>('GET', '/v1/shards'), shardsText);
      return 0;
    case 'shards set-map': {
      const map = readJson(required('--file', values.file)) as Record<string, unknown>;
      const expectedRevision =
        wholeNumber('--expected-revision', values['expected-revision']) ??
        (await api.request<ShardOverview>('GET', '/v1/shards')).map?.Revision ??
        0;
      const written = await api.request('PUT', '/v1/shards/map', { ...map, expectedRevision });
      out.print(
        written,
        (w: { transactionId: string; record: { Revision: number } }) =>
          `shard map revision ${String(w.record.Revision)} (transaction ${w.transactionId})`,
      );
      return 0;
    }
    case 'reference-values set': {
      const measurements: unknown = JSON.parse(readFileSync(required('--file', values.file), 'utf8'));
      const written = await api.request('PUT', `/v1/reference-values/${id()}`, {
        policyId: required('--policy-id', values['policy-id']),
        measurements,
      });
      out.print(written, (w: { transactionId: string }) => `reference values set (transaction ${w.transactionId})`);
      return 0;
    }
    case 'reference-values get':
      out.print(await api.request('GET', `/v1/reference-values/${id()}`));
      return 0;
    case 'audit anchors':
      out.print(
        await api.request('GET', '/v1/audit/trust-anchors'),
        (anchors: { AnchorID: string; Kind: string; Status: string }[]) =>
          anchors.map((a) => `${a.AnchorID.padEnd(36)} ${a.Kind.padEnd(18)} ${a.Status}`).join('\n'),
      );
      return 0;
    case 'audit verify-proof': {
      const verdict = await verifyProof(
        api,
        readJson(required('--result', values.result)),
        readJson(required('--proof', values.proof)),
        values.anchor,
      );
      out.print(verdict, (v: { ok: boolean; reason?: string; batchId: string; anchor: string }) =>
        v.ok
          ? `VALID: the result is in batch ${v.batchId}, signed by verifier anchor ${v.anchor}`
          : `INVALID: ${v.reason ?? 'unknown'}`,
      );
      return verdict.ok ? 0 : 1;
    }
    case 'audit device':
    case 'audit key': {
      const path = noun === 'audit' && verb === 'device' ? 'devices' : 'keys';
      const history = await api.request<History>('GET', `/v1/audit/${path}/${id()}`);
      // Block numbers need the network's connection description, named explicitly.
      const blocks =
        env.KEYFLEET_FABRIC_CONNECTION === undefined
          ? new Map<string, number>()
          : await blockNumbers(env.KEYFLEET_FABRIC_CONNECTION, history);
      out.print({ ...history, blocks: Object.fromEntries(blocks) }, () => historyText(history, blocks));
      return 0;
    }
    case 'audit tx': {
      const transactionId = required('<tx-id>', target);
      const anchor = values.anchor === undefined ? undefined : readPublicKey(values.anchor);
      const verdict = await withLedgerReader(env, values, (reader) => auditTransaction(reader, transactionId, anchor));
      out.print(verdict, transactionText);
      return verdict.found && verdict.signature !== 'invalid' ? 0 : 1;
    }
    case 'audit record': {
      const record = readJson(required('<file>', target));
      const anchor = readPublicKey(required('--anchor', values.anchor));
      const verdict = await withLedgerReader(env, values, (reader) => auditRecord(reader, record, anchor));
      out.print(verdict, recordText);
      return verdict.verified ? 0 : 1;
    }
    default:
      throw new UsageError(`unknown command: ${positionals.join(' ')}`);
  }
}

function readJson(file: string): unknown {
  return JSON.parse(readFileSync(file, 'utf8'));
}

/**
 * The auditor's check: the batch record from the ledger, its signature by the verifier anchor,
 * and the result's Merkle path to the batch root. Only the batch record is fetched; with a
 * pinned anchor key, the gateway is trusted for nothing.
 */
async function verifyProof(api: ApiClient, result: unknown, proof: unknown, anchorFile: string | undefined) {
  const batchId = (proof as { BatchID?: unknown } | null)?.BatchID;
  if (typeof batchId !== 'string') throw new UsageError('the proof names no BatchID');
  const batch = await api.request<AttestationBatchRecord>(
    'GET',
    `/v1/audit/attestation-batches/${encodeURIComponent(batchId)}`,
  );
  let anchorJwk: PublicJwk;
  if (anchorFile === undefined) {
    const anchors = await api.request<TrustAnchorRecord[]>('GET', '/v1/audit/trust-anchors');
    const anchor = anchors.find((a) => a.AnchorID === batch.VerifierID);
    if (!anchor) return { ok: false, reason: 'UNKNOWN_VERIFIER', batchId, anchor: batch.VerifierID };
    anchorJwk = anchor.PublicKey;
  } else {
    anchorJwk = createPublicKey(readFileSync(anchorFile, 'utf8')).export({ format: 'jwk' }) as PublicJwk;
  }
  if (!(await verifyBatchRecordSignature(batch, anchorJwk))) {
    return { ok: false, reason: 'BATCH_SIGNATURE_INVALID', batchId, anchor: batch.VerifierID };
  }
  const check = verifyProofAgainstLedger(result, proof, batch);
  return { ...check, batchId, anchor: batch.VerifierID };
}

/** Operators rotate and administer; an owning application may read and use its key. */
function defaultPolicy(ownerType: string | undefined, ownerId: string | undefined) {
  const operators = [{ mspId: 'Org1MSP', role: 'operator' }];
  const owner = ownerType === 'application' && ownerId ? [{ mspId: 'Org1MSP', role: 'application', id: ownerId }] : [];
  return { read: owner, use: owner, rotate: operators, administer: operators };
}

function describe(record: unknown): string {
  if (record === null || typeof record !== 'object') return String(record);
  return Object.entries(record)
    .filter(([, v]) => typeof v !== 'object' || v === null)
    .map(([k, v]) => `${k.padEnd(18)} ${String(v)}`)
    .join('\n');
}

/** One row per device, columns as wide as their widest value. */
function deviceTable(devices: readonly DeviceRecord[]): string {
  const rows = devices.map((d) => [
    d.DeviceID,
    d.Status,
    d.Group,
    d.Location,
    d.Function,
    d.EnrolledAt,
    d.LastAttestation === null ? '-' : `${d.LastAttestation.Status} ${d.LastAttestation.At}`,
  ]);
  return table(['ID', 'STATUS', 'GROUP', 'LOCATION', 'FUNCTION', 'ENROLLED AT', 'LAST ATTESTATION'], rows);
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows]
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/**
 * A record's history, oldest first. The gateway answers in Fabric's order, newest first by block
 * and transaction height (docs/ledger.md): reversed, not sorted by the clients' timestamps.
 */
interface History {
  readonly entries: readonly { transactionId: string; timestamp: string; value: unknown }[];
}

/** A record's history oldest first: when, in which block and transaction, who asked, what. */
function historyText(history: History, blocks: ReadonlyMap<string, number> = new Map()): string {
  return [...history.entries]
    .reverse()
    .map((e) => {
      const block = blocks.get(e.transactionId);
      const principal = (e.value as { Proof?: { Principal?: { Kind: string; ID: string } } } | null)?.Proof?.Principal;
      return [
        e.timestamp,
        ...(blocks.size > 0 ? [`block ${block === undefined ? '?' : String(block)}`.padEnd(11)] : []),
        e.transactionId.slice(0, 12),
        (principal ? `${principal.Kind}/${principal.ID}` : '-').padEnd(24),
        summarise(e.value),
      ].join('  ');
    })
    .join('\n');
}

/** Reads the ledger through qscc as an organisation's own identity (default Org2's auditor). */
async function withLedgerReader<T>(
  env: NodeJS.ProcessEnv,
  values: { org?: string; identity?: string },
  use: (reader: LedgerReader) => Promise<T>,
): Promise<T> {
  const reader = openLedgerReader(connectionFile(env), values.org ?? 'Org2', values.identity ?? 'auditor');
  try {
    return await use(reader);
  } finally {
    reader.close();
  }
}

const readPublicKey = (file: string) => createPublicKey(readFileSync(file, 'utf8'));

const connectionFile = (env: NodeJS.ProcessEnv) => env.KEYFLEET_FABRIC_CONNECTION ?? '.fabric/network/connection.json';

/** The block of each transaction of a history, read through qscc as Org2's auditor. */
async function blockNumbers(profile: string, history: History): Promise<Map<string, number>> {
  const blocks = new Map<string, number>();
  const reader = openLedgerReader(profile, 'Org2', 'auditor');
  try {
    for (const { transactionId } of history.entries) {
      const tx = await reader.transaction(transactionId);
      if (tx) blocks.set(transactionId, tx.blockNumber);
    }
  } finally {
    reader.close();
  }
  return blocks;
}

/** One line for a device or key record as history shows it. */
function summarise(value: unknown): string {
  const record = (value ?? {}) as {
    Status?: string;
    StatusReason?: string | null;
    ActiveVersion?: number | null;
    LatestVersion?: number;
    Versions?: { Version: number; State: string }[];
  };
  if (typeof record.Status === 'string') {
    return record.StatusReason ? `${record.Status}: ${record.StatusReason}` : record.Status;
  }
  if (Array.isArray(record.Versions)) {
    const states = record.Versions.map((v) => `v${v.Version} ${v.State}`).join(', ');
    return `active version ${record.ActiveVersion ?? 'none'} of ${record.LatestVersion ?? '?'} (${states})`;
  }
  return value === null ? 'deleted' : '';
}

if (require.main === module) {
  void run(process.argv.slice(2), process.env).then((code) => {
    process.exitCode = code;
  });
}

/** `keyfleet shards`: the map's rules in order, then one row per shard. */
function shardMoveText(job: ShardMoveJob): string {
  const what = job.kind === 'group' ? `group ${job.group ?? ''} -> ${job.to ?? ''}` : 'rebalance';
  if (job.state === 'running') return `${job.jobId}: ${what} running since ${job.startedAt}`;
  if (job.report === null) return `${job.jobId}: ${what} failed: ${job.error?.code ?? ''} ${job.error?.message ?? ''}`;
  const { report } = job;
  return [
    `${job.jobId}: ${what} ${job.state}: map revision ${String(report.mapRevision)}, ${String(report.moved)} devices moved in ${String(report.batches)} batches, ${report.seconds.toFixed(1)} s`,
    ...report.failed.map(
      (f) => `  not moved (${f.code}): ${f.devices.join(', ')} ${f.source} -> ${f.destination}: ${f.message}`,
    ),
  ].join('\n');
}

function shardsText(overview: ShardOverview): string {
  const { map } = overview;
  const any = (value: string | null) => value ?? '*';
  const head = !overview.sharded
    ? ['unsharded network: one channel, no shard map']
    : map === null
      ? [`no shard map on ${overview.governanceChannel ?? ''} yet: every device goes to shard 0`]
      : [
          `shard map revision ${String(map.Revision)} (${overview.governanceChannel ?? ''}, by ${map.UpdatedBy} at ${map.UpdatedAt})`,
          ...map.Rules.map(
            (r, i) =>
              `  rule ${String(i)}: group=${any(r.Match.Group)} location=${any(r.Match.Location)} function=${any(r.Match.Function)} -> ${r.Shard}`,
          ),
          `  default -> ${map.Default}`,
        ];
  const rows = [
    ['SHARD', 'CHANNEL', 'DEVICES', 'KEYS', 'HEIGHT'],
    ...overview.shards.map((s) => [
      String(s.shard),
      s.channel,
      String(s.devices),
      String(s.keys),
      String(s.blockHeight),
    ]),
  ];
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  const table = rows.map((row) =>
    row
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd(),
  );
  return [...head, '', ...table].join('\n');
}
