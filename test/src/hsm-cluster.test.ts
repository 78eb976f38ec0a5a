import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import {
  VerifierHsmClusterService,
  versionLabel,
  type AttestationRecord,
  type HsmClusterEventRecord,
  type HsmReplicatedKey,
  type KeyRecord,
  type Page,
} from '@keyfleet/protocol';
import { newFleet, type PhaseStats } from '@keyfleet/agent/fleet';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture';
import { createSoftHsmStore, softHsmModule, type SoftHsmStore } from '@keyfleet/gateway/testing';
import {
  freeLoopbackPort,
  newOperator,
  startGatewayProcess,
  type GatewayProcess,
  type Operator,
} from './support/gateway-process';
import { Org1Operators, keyRegistration } from './support/keys';
import { newNamespace, peerQuery } from './support/network';

const hsmCli = resolve(__dirname, '../../gateway/dist/hsm/cli.js');

/** A token goes as a pulled device would: its directory leaves the store at once. */
function pullToken(store: SoftHsmStore, label: string): void {
  const tokens = join(store.dir, 'tokens');
  const padded = Buffer.from(label.padEnd(32));
  const [tokenDir] = readdirSync(tokens).filter((d) => readFileSync(join(tokens, d, 'token.object')).includes(padded));
  renameSync(join(tokens, tokenDir ?? 'missing'), join(store.dir, 'pulled'));
  rmSync(join(store.dir, 'pulled'), { recursive: true, force: true });
}

/**
 * Issue 15's redundant HSM cluster on the real network: a gateway over two tokens loses its primary
 * token (pulled out of the SoftHSM store) while operators rotate an application key and encrypt
 * with it. It goes on with the second token without a restart, every acknowledged rotation's version
 * is on the ledger and usable, and Org2's auditor reads the failover on the ledger.
 */
describe('HSM cluster: the gateway token pulled mid-load', function () {
  this.timeout(300_000);
  let store: SoftHsmStore;
  let chaincode: string;
  let dir: string;
  let alice: Operator;
  let gateway: GatewayProcess | undefined;
  const primary = `hsmc-${String(process.pid)}`.slice(0, 24);
  const second = `${primary}-2`;
  // Present from the start but no member: the SO's ceremony and an operator add it at run time.
  const third = `${primary}-3`;
  const bare = `${primary}-4`;

  const operator = (method: string, path: string, body?: unknown) =>
    alice.call((gateway as GatewayProcess).url, method, path, body);

  before(async () => {
    chaincode = newNamespace('hsmc');
    store = createSoftHsmStore(primary);
    for (const token of [second, third, bare]) store.addToken(token);
    ceremony(primary, second);
    dir = mkdtempSync(join(tmpdir(), 'keyfleet-hsmc-'));
    alice = await newOperator(dir);
    gateway = await startGatewayProcess({
      store,
      hsmUri: `pkcs11:token=${primary}`,
      dir,
      port: await freeLoopbackPort(),
      jwksFile: alice.jwksFile,
      chaincode,
      env: { KEYFLEET_HSM_REPLICAS: `pkcs11:token=${second}` },
    });
  });

  /** The SO's ceremony, through the same CLI verb an operator runs, in a process of its own. */
  const ceremony = (...tokens: string[]) =>
    execFileSync(process.execPath, [hsmCli, 'cluster-init'], {
      env: {
        ...process.env,
        SOFTHSM2_CONF: store.conf,
        KEYFLEET_HSM_MODULE: softHsmModule,
        KEYFLEET_HSM_SO_PIN: store.soPin,
        KEYFLEET_HSM_CLUSTER_TOKENS: tokens.join(','),
      },
      stdio: 'ignore',
    });

  /** The cluster's events as Org2's auditor reads them with Fabric's CLI, once `done` holds. */
  const auditedEvents = async (done: (events: HsmClusterEventRecord[]) => boolean) => {
    let events: HsmClusterEventRecord[] = [];
    for (let attempt = 0; attempt < 60; attempt++) {
      events = peerQuery(
        chaincode,
        { org: 'Org2', name: 'auditor' },
        'hsm-cluster:ListHsmClusterEvents',
        primary,
      ) as HsmClusterEventRecord[];
      if (done(events)) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    return events;
  };

  const pull = (label: string) => {
    pullToken(store, label);
  };

  after(async () => {
    await gateway?.stop();
    store.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  it('goes on with the second token: 0 acknowledged rotations lost, every version usable, the failover on the ledger', async () => {
    const operators = [Org1Operators];
    const registered = await operator(
      'POST',
      '/v1/keys',
      keyRegistration('hsmc-data', {
        accessPolicy: { read: operators, use: operators, rotate: operators, administer: operators },
      }),
    );
    expect(registered.status, JSON.stringify(registered.body)).to.equal(201);

    const sealed: { version: number; ciphertext: string; plaintext: string }[] = [];
    const rotatedTo: number[] = [];
    const failures: string[] = [];
    // An object, so TypeScript does not narrow the flags across the awaits that change them.
    const flags = { pulled: false, stop: false, atPull: 0 };
    const deadline = Date.now() + 150_000;
    const seal = async (i: number) => {
      const plaintext = Buffer.from(`reading ${i}`).toString('base64url');
      const answer = await operator('POST', '/v1/keys/hsmc-data/encrypt', { plaintext });
      if (answer.status !== 200) throw new Error(`encrypt ${answer.status} ${JSON.stringify(answer.body)}`);
      sealed.push({ version: answer.body.version as number, ciphertext: answer.body.ciphertext as string, plaintext });
    };
    const rotations = (async () => {
      while (!flags.stop) {
        const answer = await operator('POST', '/v1/keys/hsmc-data/rotate');
        if (answer.status === 200) rotatedTo.push((answer.body as { version: number }).version);
        else failures.push(`rotate ${answer.status} ${JSON.stringify(answer.body)}`);
        if ((flags.pulled && rotatedTo.length >= flags.atPull + 3) || failures.length > 20 || Date.now() > deadline) {
          flags.stop = true;
        }
      }
    })();
    const encryptions = (async () => {
      for (let i = 0; !flags.stop; i++) await seal(i).catch((err: unknown) => failures.push(String(err)));
    })();
    while (rotatedTo.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    try {
      pull(primary);
      flags.atPull = rotatedTo.length;
      flags.pulled = true;
    } finally {
      if (!flags.pulled) flags.stop = true;
      await Promise.all([rotations, encryptions]);
    }
    expect(failures, gateway?.output().slice(-6000)).to.deep.equal([]);
    expect(rotatedTo.length, 'rotations acknowledged after the token was pulled').to.be.at.least(flags.atPull + 3);

    // Every acknowledged rotation is on the ledger, and every version's ciphertexts open.
    const record = (await operator('GET', '/v1/keys/hsmc-data')).body.record as KeyRecord;
    const onLedger = record.Versions.map((v) => v.Version);
    expect(onLedger).to.include.members(rotatedTo);
    for (const s of sealed) {
      const opened = await operator('POST', '/v1/keys/decrypt', { ciphertext: s.ciphertext });
      expect(opened.status, JSON.stringify(opened.body)).to.equal(200);
      expect(opened.body.plaintext).to.equal(s.plaintext);
    }
    const sealedVersions = new Set(sealed.map((s) => s.version));
    expect(sealedVersions.size).to.be.greaterThan(3);
    // The gateway still serves: a new version made on the surviving token.
    const last = await operator('POST', '/v1/keys/hsmc-data/rotate');
    expect(last.status, JSON.stringify(last.body)).to.equal(200);

    // As Org2's auditor, with Fabric's own CLI: the failover and the replications.
    const events = await auditedEvents((all) => all.some((e) => e.DocType === 'hsm-failover'));
    const failovers = events.filter((e) => e.DocType === 'hsm-failover');
    expect(failovers).to.have.length(1);
    expect(failovers[0]).to.include({ From: primary, To: second });
    const replications = events.filter((e) => e.DocType === 'hsm-replication');
    expect(replications.some((e) => e.Reason === 'join' && e.Target === second)).to.equal(true);
  });

  it('joins a token while the gateway runs: every key copied, on the ledger, and it takes over when the primary goes', async () => {
    const before = await operator('POST', '/v1/keys/hsmc-data/encrypt', { plaintext: 'YmVmb3Jl' });
    expect(before.status, JSON.stringify(before.body)).to.equal(200);
    expect((await operator('GET', '/v1/hsm/cluster')).body).to.deep.include({ primary: second, inSync: [second] });

    // Refused, and nothing changes: each answer coded, the cluster as it was.
    const refusals: [string, unknown, number, string][] = [
      ['a token that does not exist', { token: `${primary}-9` }, 404, 'NOT_FOUND'],
      ['a token the ceremony never reached', { token: bare }, 400, 'BAD_REQUEST'],
      ['a label that is no token label', { token: 'bad label;object=x' }, 400, 'BAD_REQUEST'],
      ['an unknown field', { token: third, force: true }, 400, 'BAD_REQUEST'],
      ['no token', {}, 400, 'BAD_REQUEST'],
    ];
    for (const [why, body, status, code] of refusals) {
      const answer = await operator('POST', '/v1/hsm/cluster/members', body);
      expect(
        [answer.status, (answer.body.error as { code?: string } | undefined)?.code],
        `${why}: ${JSON.stringify(answer.body)}`,
      ).to.deep.equal([status, code]);
    }
    expect((await operator('GET', '/v1/hsm/cluster')).body).to.deep.include({ inSync: [second] });

    // The SO brings the KEK into the new token (another process); the operator joins it: no restart.
    ceremony(second, third);
    const joined = await operator('POST', '/v1/hsm/cluster/members', { token: third });
    expect(joined.status, JSON.stringify(joined.body)).to.equal(200);
    const copied = joined.body.copied as { label: string; id: string; checkValue: string }[];
    const record = (await operator('GET', '/v1/keys/hsmc-data')).body.record as KeyRecord;
    const versionLabels = record.Versions.map((v) => versionLabel('hsmc-data', v.Version));
    expect(copied.map((k) => k.label)).to.include.members(['device-ca', 'metadata-signing', ...versionLabels]);
    expect(joined.body.cluster).to.deep.include({ primary: second, inSync: [second, third] });

    // A version made now is written through to the new member; then the primary is pulled.
    const rotated = await operator('POST', '/v1/keys/hsmc-data/rotate');
    expect(rotated.status, JSON.stringify(rotated.body)).to.equal(200);
    const after = await operator('POST', '/v1/keys/hsmc-data/encrypt', { plaintext: 'YWZ0ZXI' });
    expect(after.status, JSON.stringify(after.body)).to.equal(200);
    const rotatedRecord = (await operator('GET', '/v1/keys/hsmc-data')).body.record as KeyRecord;
    pull(second);
    for (const [sealed, plaintext] of [
      [before, 'YmVmb3Jl'],
      [after, 'YWZ0ZXI'],
    ] as const) {
      const opened = await operator('POST', '/v1/keys/decrypt', { ciphertext: sealed.body.ciphertext });
      expect(opened.status, JSON.stringify(opened.body)).to.equal(200);
      expect(opened.body.plaintext).to.equal(plaintext);
    }
    const served = await operator('POST', '/v1/keys/hsmc-data/rotate');
    expect(served.status, JSON.stringify(served.body)).to.equal(200);
    expect((await operator('GET', '/v1/hsm/cluster')).body).to.deep.include({ primary: third, inSync: [third] });

    // Org2's auditor reads the join with its check values, the write-through and the failover.
    const events = await auditedEvents((all) => all.some((e) => e.DocType === 'hsm-failover' && e.To === third));
    const replications = (reason: string) =>
      events.flatMap((e) =>
        e.DocType === 'hsm-replication' && e.Reason === reason && e.Target === third ? [e.Keys] : [],
      );
    const [joinKeys, ...moreJoins] = replications('join');
    expect(moreJoins, JSON.stringify(events)).to.deep.equal([]);
    expect((joinKeys ?? []).map((k: HsmReplicatedKey) => [k.ID, k.CheckValue])).to.have.deep.members(
      copied.map((k) => [k.id, k.checkValue]),
    );
    // The rotation made a version key (the next one, pre-rotated) after the join: written through.
    const writtenThrough = replications('write-through').flatMap((keys) => keys.map((k) => k.Label));
    expect(writtenThrough.filter((label) => label.startsWith('key:hsmc-data:'))).to.not.deep.equal([]);
    // Every version the ledger knew before the pull was on the third token: copied or written through.
    expect([...copied.map((k) => k.label), ...writtenThrough]).to.include.members(
      rotatedRecord.Versions.map((v) => versionLabel('hsmc-data', v.Version)),
    );
    // Records are listed by transaction id, not in time order: the two failovers, whichever comes first.
    expect(events.filter((e) => e.DocType === 'hsm-failover').map((e) => [e.From, e.To])).to.have.deep.members([
      [primary, second],
      [second, third],
    ]);
  });
});

/**
 * The verifier's own cluster (Org2's tokens): its verifier, Fabric identity and TLS CA keys and
 * its challenge key replicated under the cluster KEK, recorded on the ledger by the verifier
 * itself. Its primary token is pulled while devices attest: every attestation is answered, and the
 * results and the failover are on the ledger as Org2's auditor reads them.
 */
describe('HSM cluster: the verifier’s token pulled while devices attest', function () {
  this.timeout(300_000);
  let f: GatewayFixture;
  let workDir: string;
  const token = 'keyfleet-verifier-it';

  before(async () => {
    f = await startGatewayFixture({}, {}, { verifierTokens: 2 });
    workDir = mkdtempSync(join(tmpdir(), 'keyfleet-verifier-cluster-'));
  });
  after(async () => {
    await f.close();
    rmSync(workDir, { recursive: true, force: true });
  });

  const auditor = (...args: string[]) => peerQuery(f.chaincode, { org: 'Org2', name: 'auditor' }, ...args);

  it('goes on with the second token: every attestation answered and on the ledger, the failover recorded by the verifier', async () => {
    const fleet = newFleet({
      gatewayUrl: f.url,
      size: 4,
      concurrency: 4,
      workDir,
      idPrefix: 'vclu',
      group: 'verifier-cluster',
      operatorAuthorization: () => f.bearer(f.callers.operator),
    });
    await fleet.setReferenceValues();
    expect((await fleet.enrol({ progress: false })).failed).to.equal(0);

    const rounds: PhaseStats[] = [];
    const attest = async () => {
      rounds.push(await fleet.attest({ progress: false }));
    };
    await attest();
    // Attestations in flight while the token goes; then more, all on the second token.
    const inFlight = attest();
    pullToken(f.store, token);
    await inFlight;
    for (let i = 0; i < 3; i++) await attest();
    expect(
      rounds.map((r) => [r.ok, r.failed, r.failures]),
      'attestation rounds: ok, failed, failures',
    ).to.deep.equal(rounds.map(() => [4, 0, {}]));

    // Every acknowledged attestation is on the ledger, once per nonce.
    for (const device of fleet.devices()) {
      const page = auditor('ListAttestations', device.id, '200', '') as Page<AttestationRecord>;
      expect(page.Records, device.id).to.have.length(rounds.length);
      expect(new Set(page.Records.map((r) => r.NonceDigest)).size, device.id).to.equal(rounds.length);
    }

    // The verifier wrote its cluster's join and failover itself, as its own service.
    let events: HsmClusterEventRecord[] = [];
    for (let attempt = 0; attempt < 60; attempt++) {
      events = auditor('hsm-cluster:ListHsmClusterEvents', token) as HsmClusterEventRecord[];
      if (events.some((e) => e.DocType === 'hsm-failover')) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    const join = events.find((e) => e.DocType === 'hsm-replication' && e.Reason === 'join');
    expect(join?.Principal, JSON.stringify(events)).to.deep.equal({ Kind: 'service', ID: VerifierHsmClusterService });
    expect(join?.RecordedBy).to.match(/^Org2MSP\/verifier\//);
    // Its inventory at the join, the challenge key written through when the verifier made it.
    const copied = events.flatMap((e) =>
      e.DocType === 'hsm-replication' && e.Target === `${token}-2` ? e.Keys.map((k) => k.Label) : [],
    );
    expect(copied).to.include.members(['verifier', 'fabric-identity', 'tls-ca', 'attestation-challenge']);
    const failovers = events.filter((e) => e.DocType === 'hsm-failover');
    expect(failovers.map((e) => [e.From, e.To])).to.deep.equal([[token, `${token}-2`]]);
  });
});
