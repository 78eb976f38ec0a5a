import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeviceRecord } from '@keyfleet/protocol';
import { createCredentials } from './credentials';
import { run } from './keyfleet';

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly authorization: string | undefined;
  readonly body: unknown;
}

/** A gateway that answers each `METHOD /path` with a canned body, and records what it was sent. */
async function stubGateway(answers: Record<string, { status?: number; body: unknown }>) {
  const seen: Seen[] = [];
  const server: Server = createServer((request, response) => {
    let text = '';
    request.on('data', (chunk: Buffer) => (text += chunk.toString()));
    request.on('end', () => {
      const url = request.url ?? '';
      seen.push({
        method: request.method ?? '',
        url,
        authorization: request.headers.authorization,
        body: text === '' ? undefined : JSON.parse(text),
      });
      const answer = answers[`${request.method ?? ''} ${url.split('?')[0] ?? ''}`];
      response.writeHead(answer?.status ?? (answer ? 200 : 404), { 'content-type': 'application/json' });
      response.end(JSON.stringify(answer?.body ?? { error: { code: 'NOT_FOUND', message: url } }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

function device(id: string, fields: Partial<DeviceRecord> = {}): DeviceRecord {
  return {
    DocType: 'device',
    DeviceID: id,
    Group: 'lab',
    Location: 'bench',
    Function: 'probe',
    Shard: 0,
    CertFingerprint: 'ab'.repeat(32),
    Status: 'active',
    StatusReason: null,
    RevocationReason: null,
    EnrolledAt: '2026-11-01T10:00:00.000Z',
    EnrolledBy: 'Org1MSP:gateway-1',
    UpdatedAt: '2026-11-01T10:00:00.000Z',
    LastAttestation: null,
    Proof: { TxID: 'tx', JWS: 'jws' } as DeviceRecord['Proof'],
    ...fields,
  };
}

describe('keyfleet command line', () => {
  let dir: string;
  let credentialsFile: string;
  let gateway: Awaited<ReturnType<typeof stubGateway>>;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyfleet-cli-'));
    credentialsFile = join(dir, 'operator.json');
    await createCredentials('operator', 'operator', credentialsFile, join(dir, 'jwks.json'));
  });

  afterEach(async () => {
    await gateway.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function keyfleet(argv: string[], env: NodeJS.ProcessEnv = { KEYFLEET_CREDENTIALS: credentialsFile }) {
    let stdout = '';
    let stderr = '';
    const code = await run(
      argv,
      { KEYFLEET_URL: gateway.url, ...env },
      {
        stdout: { write: (text: string) => (stdout += text) },
        stderr: { write: (text: string) => (stderr += text) },
      },
    );
    return { code, stdout, stderr };
  }

  const usageError = (code: 'INVALID_ARGUMENT' | 'CREDENTIALS_REQUIRED', message: string) =>
    code === 'INVALID_ARGUMENT'
      ? `keyfleet: ${code}: ${message} (keyfleet --help lists the commands)\n`
      : `keyfleet: ${code}: ${message}\n`;

  describe('whole-number options: a coded usage error naming the option and its range, nothing sent', () => {
    beforeEach(async () => {
      gateway = await stubGateway({});
    });
    const token = ['devices', 'token', 'sensor-1', '--group', 'lab', '--location', 'bench', '--function', 'probe'];
    const list = ['devices', 'list', '--group', 'lab'];
    const register = ['keys', 'register', 'k-1', '--algorithm', 'AES-256', '--purpose', 'encrypt'];
    const owner = ['--owner', 'application:billing'];
    const ttl = '--ttl must be a whole number of seconds from 60 to 604800';
    const pageSize = '--page-size must be a whole number from 1 to 200';
    const rotateEvery = '--rotate-every must be a whole number of seconds from 60 to 315360000';
    const retention = '--retention must be a whole number of seconds from 0 to 315360000';
    const cases: [string[], string][] = [
      [[...token, '--ttl', '-5'], ttl],
      [[...token, '--ttl=-5'], ttl],
      [[...token, '--ttl', '59'], ttl],
      [[...token, '--ttl', '604801'], ttl],
      [[...token, '--ttl', '1e3'], ttl],
      [[...token, '--ttl', '90.5'], ttl],
      [[...token, '--ttl', ''], ttl],
      [[...token, '--ttl'], ttl],
      [[...token, '--ttl', '99999999999999999999'], ttl],
      [[...list, '--page-size', '0'], pageSize],
      [[...list, '--page-size', '201'], pageSize],
      [[...list, '--page-size', '-3'], pageSize],
      [[...register, ...owner, '--rotate-every', '-60'], rotateEvery],
      [[...register, ...owner, '--rotate-every', 'daily'], rotateEvery],
      [[...register, ...owner, '--rotate-every', '86400', '--retention', '-1'], retention],
      ...['0', '-1', 'one', '1.5', '10000000'].map((version): [string[], string] => [
        ['keys', 'compromise', 'k-1', '--reason', 'leak', '--version', version],
        '--version must be a whole number from 1 to 9999999',
      ]),
    ];
    for (const [argv, message] of cases) {
      const option = argv.findLastIndex((arg) => arg.startsWith(message.split(' ')[0] ?? '--'));
      it(`${argv.slice(0, 2).join(' ')} … ${argv
        .slice(option)
        .map((arg) => (arg === '' ? "''" : arg))
        .join(' ')}`, async () => {
        const result = await keyfleet(argv);
        expect(result).to.deep.equal({ code: 2, stdout: '', stderr: usageError('INVALID_ARGUMENT', message) });
        expect(gateway.seen).to.deep.equal([]);
      });
    }

    it('other option errors name the option in one line, without Node’s parseArgs text', async () => {
      for (const [argv, message] of [
        [[...list, '--bogus'], 'unknown option --bogus'],
        // The shard map places a device: a token names no shard.
        [[...token, '--shard', '1'], 'unknown option --shard'],
        [[...list, '--json=yes'], '--json takes no value'],
        [
          ['devices', 'suspend', 'sensor-1', '--reason', '-x'],
          "--reason needs a value (one that starts with '-' is written --reason=VALUE)",
        ],
        [['devices', 'suspend', 'sensor-1', '--reason'], '--reason needs a value'],
        [[...list, '--help=yes'], '--help takes no value'],
      ] as const) {
        expect(await keyfleet([...argv])).to.deep.equal({
          code: 2,
          stdout: '',
          stderr: usageError('INVALID_ARGUMENT', message),
        });
      }
      expect(gateway.seen).to.deep.equal([]);
    });

    it('sends the bounds themselves', async () => {
      await keyfleet([...token, '--ttl', '60']);
      await keyfleet([...token, '--ttl', '604800']);
      await keyfleet([...list, '--page-size', '200']);
      expect(gateway.seen.map((s) => s.body ?? s.url)).to.deep.equal([
        { deviceId: 'sensor-1', group: 'lab', location: 'bench', function: 'probe', ttlSeconds: 60 },
        { deviceId: 'sensor-1', group: 'lab', location: 'bench', function: 'probe', ttlSeconds: 604800 },
        '/v1/devices?group=lab&pageSize=200',
      ]);
    });
  });

  describe('credentials: an unset, empty or unreadable KEYFLEET_CREDENTIALS says what to set', () => {
    beforeEach(async () => {
      gateway = await stubGateway({
        'GET /v1/devices': { body: { items: [], bookmark: '' } },
        'POST /v1/devices': {
          status: 201,
          body: { deviceId: 'sensor-1', transactionId: 'tx-1', certificate: 'PEM' },
        },
      });
    });
    const hint =
      "set KEYFLEET_CREDENTIALS to a credentials file made by 'keyfleet credentials create <subject> --role operator --out FILE' (npm start makes .keyfleet/operator.json)";
    const commands = [['devices', 'list', '--group', 'lab'], ['token'], ['audit', 'device', 'sensor-1']];

    for (const [env, state] of [
      [{}, 'is not set'],
      [{ KEYFLEET_CREDENTIALS: '' }, 'is empty'],
    ] as const) {
      for (const argv of commands) {
        it(`${argv.join(' ')} with KEYFLEET_CREDENTIALS that ${state}`, async () => {
          expect(await keyfleet(argv, env)).to.deep.equal({
            code: 2,
            stdout: '',
            stderr: usageError('CREDENTIALS_REQUIRED', `KEYFLEET_CREDENTIALS ${state}: ${hint}`),
          });
          expect(gateway.seen).to.deep.equal([]);
        });
      }
    }

    it('names a file that cannot be read', async () => {
      const missing = join(dir, 'nobody.json');
      expect(await keyfleet(['devices', 'list', '--group', 'lab'], { KEYFLEET_CREDENTIALS: missing })).to.deep.equal({
        code: 2,
        stdout: '',
        stderr: usageError('CREDENTIALS_REQUIRED', `KEYFLEET_CREDENTIALS=${missing} cannot be used (ENOENT): ${hint}`),
      });
      expect(gateway.seen).to.deep.equal([]);
    });

    it('sends a bearer token when it is set, and none for the public enrolment', async () => {
      expect((await keyfleet(['devices', 'list', '--group', 'lab'])).code).to.equal(0);
      const csr = join(dir, 'sensor-1.csr');
      writeFileSync(csr, 'CSR');
      expect((await keyfleet(['devices', 'enrol', '--token', 'T', '--csr', csr], {})).code).to.equal(0);
      expect(gateway.seen.map((s) => s.authorization?.split(' ')[0])).to.deep.equal(['Bearer', undefined]);
    });
  });

  describe('devices list', () => {
    const page = {
      items: [
        device('sensor-1', {
          LastAttestation: {
            ResultID: 'r-1',
            Status: 'affirming',
            VerifierID: 'verifier-1',
            At: '2026-11-02T08:00:00.000Z',
            BatchID: null,
          },
        }),
        device('sensor-10', {
          Status: 'suspended',
          StatusReason: 'attestation contraindicated',
          Location: 'roof',
          Function: 'weather',
          EnrolledAt: '2026-11-01T11:00:00.000Z',
        }),
      ],
      bookmark: 'c2Vuc29yLTEw',
    };
    beforeEach(async () => {
      gateway = await stubGateway({ 'GET /v1/devices': { body: page } });
    });

    it('prints one row per device under a header', async () => {
      const result = await keyfleet(['devices', 'list', '--group', 'lab']);
      expect(result.stderr).to.equal('');
      expect(result.code).to.equal(0);
      expect(result.stdout.split('\n')).to.deep.equal([
        'ID         STATUS     GROUP  LOCATION  FUNCTION  ENROLLED AT               LAST ATTESTATION',
        'sensor-1   active     lab    bench     probe     2026-11-01T10:00:00.000Z  affirming 2026-11-02T08:00:00.000Z',
        'sensor-10  suspended  lab    roof      weather   2026-11-01T11:00:00.000Z  -',
        '(more: --bookmark c2Vuc29yLTEw)',
        '',
      ]);
    });

    it('--json prints the page as the gateway sent it', async () => {
      const result = await keyfleet(['devices', 'list', '--group', 'lab', '--json']);
      expect(result.code).to.equal(0);
      expect(JSON.parse(result.stdout)).to.deep.equal(page);
    });
  });

  describe('history', () => {
    // The gateway answers in Fabric's order: newest first by block height.
    const entries = [
      {
        transactionId: 'c'.repeat(64),
        timestamp: '2026-11-01T12:00:00.000Z',
        isDelete: false,
        value: device('sensor-1', { Status: 'revoked', StatusReason: 'stolen' }),
      },
      {
        transactionId: 'b'.repeat(64),
        timestamp: '2026-11-01T11:00:00.000Z',
        isDelete: false,
        value: {
          ...device('sensor-1', { Status: 'suspended', StatusReason: 'maintenance' }),
          Proof: { AnchorID: 'm', JWS: 'j', TxID: 'b'.repeat(64), Principal: { Kind: 'operator', ID: 'alice' } },
        },
      },
      {
        transactionId: 'a'.repeat(64),
        timestamp: '2026-11-01T10:00:00.000Z',
        isDelete: false,
        value: device('sensor-1'),
      },
    ];
    beforeEach(async () => {
      gateway = await stubGateway({ 'GET /v1/audit/devices/sensor-1': { body: { entries } } });
    });

    it('audit device prints the oldest change first, with who asked for each', async () => {
      const result = await keyfleet(['audit', 'device', 'sensor-1']);
      expect(result.code).to.equal(0);
      expect(result.stdout).to.equal(
        [
          `2026-11-01T10:00:00.000Z  ${'a'.repeat(12)}  ${'-'.padEnd(24)}  active`,
          `2026-11-01T11:00:00.000Z  ${'b'.repeat(12)}  ${'operator/alice'.padEnd(24)}  suspended: maintenance`,
          `2026-11-01T12:00:00.000Z  ${'c'.repeat(12)}  ${'-'.padEnd(24)}  revoked: stolen`,
          '',
        ].join('\n'),
      );
    });
  });

  describe('keys compromise', () => {
    const path = '/v1/keys/billing-data/versions/2/compromise';
    it('sends the version and reason, and prints the transaction', async () => {
      gateway = await stubGateway({
        [`POST ${path}`]: {
          body: {
            outcome: 'compromised',
            keyId: 'billing-data',
            version: 2,
            transactionId: 'tx-9',
            compromisedAt: '2026-12-03T10:00:00.000Z',
            nextRotationDue: '2026-12-03T10:00:00.000Z',
          },
        },
      });
      const result = await keyfleet(['keys', 'compromise', 'billing-data', '--version', '2', '--reason', 'laptop']);
      expect(result).to.deep.equal({
        code: 0,
        stdout: 'billing-data version 2 compromised (transaction tx-9)\n',
        stderr: '',
      });
      expect(gateway.seen.map((s) => [s.method, s.url, s.body])).to.deep.equal([['POST', path, { reason: 'laptop' }]]);
    });

    it('says when the version was already compromised', async () => {
      gateway = await stubGateway({
        [`POST ${path}`]: {
          body: {
            outcome: 'already-compromised',
            keyId: 'billing-data',
            version: 2,
            transactionId: null,
            compromisedAt: '2026-12-01T09:00:00.000Z',
            nextRotationDue: null,
          },
        },
      });
      const result = await keyfleet(['keys', 'compromise', 'billing-data', '--version', '2', '--reason', 'again']);
      expect(result.stdout).to.equal('billing-data version 2 was already compromised (at 2026-12-01T09:00:00.000Z)\n');
    });

    it('needs --version and --reason, and sends nothing without them', async () => {
      gateway = await stubGateway({});
      expect((await keyfleet(['keys', 'compromise', 'billing-data', '--reason', 'x'])).code).to.equal(2);
      expect((await keyfleet(['keys', 'compromise', 'billing-data', '--version', '2'])).code).to.equal(2);
      expect(gateway.seen).to.deep.equal([]);
    });
  });

  describe('shards', () => {
    const overview = {
      sharded: true,
      governanceChannel: 'keyfleet-governance',
      map: {
        DocType: 'shard-map',
        Revision: 3,
        Shards: ['keyfleet', 'keyfleet-shard1'],
        Rules: [
          { Match: { Group: 'meters', Location: null, Function: null }, Shard: 'keyfleet-shard1' },
          { Match: { Group: 'pumps', Location: 'north', Function: null }, Shard: 'keyfleet' },
        ],
        Default: 'keyfleet',
        UpdatedAt: '2026-12-01T09:00:00.000Z',
        UpdatedBy: 'Org1MSP:gateway-1',
      },
      shards: [
        { shard: 0, channel: 'keyfleet', devices: 12, keys: 30, blockHeight: 117 },
        { shard: 1, channel: 'keyfleet-shard1', devices: 3, keys: 3, blockHeight: 9 },
      ],
    };
    const mapFile = () => {
      const file = join(dir, 'map.json');
      writeFileSync(file, JSON.stringify({ shards: ['keyfleet'], rules: [], default: 'keyfleet' }));
      return file;
    };

    it('prints the map, its rules in order, and a row per shard', async () => {
      gateway = await stubGateway({ 'GET /v1/shards': { body: overview } });
      const result = await keyfleet(['shards']);
      expect(result.code).to.equal(0);
      expect(result.stdout.split('\n')).to.deep.equal([
        'shard map revision 3 (keyfleet-governance, by Org1MSP:gateway-1 at 2026-12-01T09:00:00.000Z)',
        '  rule 0: group=meters location=* function=* -> keyfleet-shard1',
        '  rule 1: group=pumps location=north function=* -> keyfleet',
        '  default -> keyfleet',
        '',
        'SHARD  CHANNEL          DEVICES  KEYS  HEIGHT',
        '0      keyfleet         12       30    117',
        '1      keyfleet-shard1  3        3     9',
        '',
      ]);
    });

    it('--json prints the overview as the gateway sent it; unsharded says so', async () => {
      gateway = await stubGateway({ 'GET /v1/shards': { body: overview } });
      expect(JSON.parse((await keyfleet(['shards', '--json'])).stdout)).to.deep.equal(overview);
      await gateway.close();
      const unsharded = { sharded: false, governanceChannel: null, map: null, shards: overview.shards.slice(0, 1) };
      gateway = await stubGateway({ 'GET /v1/shards': { body: unsharded } });
      expect((await keyfleet(['shards'])).stdout.split('\n')[0]).to.equal(
        'unsharded network: one channel, no shard map',
      );
    });

    it('set-map sends the file with the revision it read, or the one given', async () => {
      gateway = await stubGateway({
        'GET /v1/shards': { body: overview },
        'PUT /v1/shards/map': { body: { transactionId: 'tx-9', record: { Revision: 4 } } },
      });
      const file = mapFile();
      const result = await keyfleet(['shards', 'set-map', '--file', file]);
      expect(result.stdout).to.equal('shard map revision 4 (transaction tx-9)\n');
      await keyfleet(['shards', 'set-map', '--file', file, '--expected-revision', '7']);
      const body = { shards: ['keyfleet'], rules: [], default: 'keyfleet' };
      expect(gateway.seen.map((s) => [s.method, s.url, s.body])).to.deep.equal([
        ['GET', '/v1/shards', undefined],
        ['PUT', '/v1/shards/map', { ...body, expectedRevision: 3 }],
        ['PUT', '/v1/shards/map', { ...body, expectedRevision: 7 }],
      ]);
    });

    it('set-map refuses a bad --expected-revision or no --file, and sends nothing', async () => {
      gateway = await stubGateway({});
      for (const argv of [
        ['shards', 'set-map', '--file', mapFile(), '--expected-revision', '-1'],
        ['shards', 'set-map', '--file', mapFile(), '--expected-revision', 'latest'],
        ['shards', 'set-map'],
      ]) {
        expect((await keyfleet(argv)).code, argv.join(' ')).to.equal(2);
      }
      expect(gateway.seen).to.deep.equal([]);
    });
  });
});
