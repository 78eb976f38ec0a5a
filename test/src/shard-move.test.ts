import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { newAgent, type Agent } from '@keyfleet/agent';
import type { DeviceRecord, HistoryEntry, KeyRecord, ShardMoveRecord } from '@keyfleet/protocol';
import { createSoftHsmStore, type SoftHsmStore } from '@keyfleet/gateway/testing';
import {
  freeLoopbackPort,
  newOperator,
  startGatewayProcess,
  type GatewayProcess,
  type Operator,
} from './support/gateway-process';
import { networkScriptAt, shardNetwork } from './support/network';

const Source = 'keyfleet';
const Destination = 'keyfleet-shard1';
const Group = 'meters';
/** Devices in the moved group (KEYFLEET_MOVE_DEVICES for a larger measurement run). */
const DeviceCount = Number(process.env.KEYFLEET_MOVE_DEVICES ?? 16);

/** One operation the load sent through the gateway, and what became of it. */
interface Operation {
  readonly device: string;
  readonly kind: 'suspend' | 'reinstate' | 'rotate';
  /** Ledger transaction of an acknowledged status change; the new version of an acknowledged rotation. */
  ack: { txId?: string; version?: number } | null;
  failure: string | null;
}

/**
 * Live re-sharding (issue 15 item 2) on a real `--shards 2` network: a group of devices enrolled on
 * shard 0 moves to shard 1 through the gateway (`POST /v1/shards/moves`) while steady load runs on
 * the same devices (status changes and device key rotations through the gateway). Afterwards Org2's
 * auditor, with Fabric's own `peer chaincode query` on both channels, finds every acknowledged
 * operation exactly once, on the shard that owned the device when it was acknowledged; each device
 * live on exactly one shard; and the move records of both channels linked up.
 */
describe('live re-sharding: a group moves from shard 0 to shard 1 under load', function () {
  this.timeout(1_200_000);
  const { dir: networkDir, portBase } = shardNetwork;
  const network = (...args: string[]) => networkScriptAt(networkDir, portBase, ...args);
  let store: SoftHsmStore;
  let dir: string;
  let alice: Operator;
  let gateway: GatewayProcess | undefined;
  let url: string;
  const agents = new Map<string, Agent>();
  const devices = Array.from({ length: DeviceCount }, (_, i) => `meter-${String(i).padStart(4, '0')}`);
  // Half the devices take status changes, the other half key rotations (a suspended device may not rotate).
  const statusDevices = devices.filter((_, i) => i % 2 === 0);
  const rotatingDevices = devices.filter((_, i) => i % 2 === 1);
  const keyOf = (device: string) => `${device}-data`;

  const operator = async (method: string, path: string, body?: unknown) => {
    const answer = await alice.call(url, method, path, body);
    if (answer.status >= 300)
      throw new Error(`${method} ${path}: ${String(answer.status)} ${JSON.stringify(answer.body)}`);
    return answer.body;
  };

  /** `peer chaincode query` as Org2's auditor on a channel: the parsed answer, or the refusal's text. */
  const query = (channel: string, ...args: string[]): { ok: true; value: unknown } | { ok: false; error: string } => {
    const env = network('env', 'Org2', 'auditor', '--channel', channel);
    const run = spawnSync(
      'bash',
      [
        '-c',
        `${env}\npeer chaincode query -C "$KEYFLEET_CHANNEL" -n keyfleet -c "$1"`,
        'q',
        JSON.stringify({ Args: args }),
      ],
      { encoding: 'utf8' },
    );
    return run.status === 0 ? { ok: true, value: JSON.parse(run.stdout) as unknown } : { ok: false, error: run.stderr };
  };
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names the record type the contract answers, as LedgerClient.read does
  const queryValue = <T>(channel: string, ...args: string[]): T => {
    const answer = query(channel, ...args);
    if (!answer.ok) throw new Error(`${channel} ${args.join(' ')}: ${answer.error}`);
    return answer.value as T;
  };

  /** Runs `fn` over `items`, `width` at a time. */
  const inParallel = async (items: readonly string[], width: number, fn: (item: string) => Promise<void>) => {
    const queue = [...items];
    await Promise.all(
      Array.from({ length: width }, async () => {
        for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
      }),
    );
  };

  before(async () => {
    network('up', '--shards', '2');
    network('deploy');
    store = createSoftHsmStore('keyfleet-move');
    dir = mkdtempSync(join(tmpdir(), 'keyfleet-move-'));
    alice = await newOperator(dir);
    const port = await freeLoopbackPort();
    gateway = await startGatewayProcess({
      store,
      hsmUri: store.uri,
      dir,
      port,
      jwksFile: alice.jwksFile,
      chaincode: 'keyfleet',
      env: { KEYFLEET_FABRIC_CONNECTION: join(networkDir, 'connection.json') },
    });
    url = gateway.url;
    // The group, on shard 0 (no map yet: every device goes to shard 0), each device with a key.
    await inParallel(devices, 6, async (deviceId) => {
      const { token } = await operator('POST', '/v1/enrolment-tokens', {
        deviceId,
        group: Group,
        location: 'plant-1',
        function: 'meter',
      });
      const agent = newAgent({ keystorePath: join(dir, `${deviceId}.json`), gatewayUrl: url, deviceId });
      await agent.enrol(token as string);
      await operator('POST', `/v1/devices/${deviceId}/keys`, { keyId: keyOf(deviceId) });
      await agent.rotate(keyOf(deviceId));
      agents.set(deviceId, agent);
    });
  });

  after(async () => {
    await gateway?.stop();
    store.remove();
    network('down');
    rmSync(dir, { recursive: true, force: true });
  });

  it('moves every device with 0 lost and 0 duplicated operations, as Org2 sees both channels', async () => {
    for (const deviceId of devices) {
      expect(queryValue<DeviceRecord>(Source, 'GetDevice', deviceId).Group).to.equal(Group);
    }
    const rotationBase = new Map(
      rotatingDevices.map((d) => [d, queryValue<KeyRecord>(Source, 'GetKey', keyOf(d)).LatestVersion]),
    );

    // Steady load on every device of the group, until the move is done.
    const operations: Operation[] = [];
    let moving = true;
    const statusLoad = async (deviceId: string) => {
      let suspended = false;
      while (moving) {
        const kind = suspended ? 'reinstate' : 'suspend';
        const op: Operation = { device: deviceId, kind, ack: null, failure: null };
        operations.push(op);
        const answer = await alice.call(url, 'POST', `/v1/devices/${deviceId}/${kind}`, { reason: 'load' });
        if (answer.status === 200) {
          op.ack = { txId: answer.body.transactionId as string };
          suspended = !suspended;
        } else {
          const error = answer.body.error as { code: string; detail?: string };
          op.failure = `${String(answer.status)} ${error.detail ?? error.code}`;
        }
      }
    };
    const rotationLoad = async (deviceId: string) => {
      const agent = agents.get(deviceId);
      while (moving && agent !== undefined) {
        const op: Operation = { device: deviceId, kind: 'rotate', ack: null, failure: null };
        operations.push(op);
        try {
          op.ack = { version: (await agent.rotate(keyOf(deviceId))).version };
        } catch (err) {
          const e = err as { code?: string; detail?: string };
          op.failure = `${e.code ?? 'ERROR'} ${e.detail ?? ''}`.trim();
        }
      }
    };
    const load = Promise.all([...statusDevices.map(statusLoad), ...rotatingDevices.map(rotationLoad)]);
    // Let the load run a little before the move, so that operations land on both sides of it.
    await new Promise((r) => setTimeout(r, 3_000));

    const started = (await operator('POST', '/v1/shards/moves', { group: Group, to: Destination })) as {
      jobId: string;
    };
    let job: { state: string; report: { moved: number; batches: number; failed: unknown[]; seconds: number } | null };
    do {
      await new Promise((r) => setTimeout(r, 500));
      job = (await operator('GET', `/v1/shards/moves/${started.jobId}`)) as typeof job;
    } while (job.state === 'running');
    await new Promise((r) => setTimeout(r, 3_000));
    moving = false;
    await load;
    expect(job.state, JSON.stringify(job)).to.equal('done');
    expect(job.report?.failed).to.deep.equal([]);
    expect(job.report?.moved).to.equal(DeviceCount);

    // Every device: live on shard 1 only; the move recorded on both channels, linked up.
    const moveOf = new Map<string, { source: ShardMoveRecord; destination: ShardMoveRecord }>();
    for (const deviceId of devices) {
      const gone = query(Source, 'GetDevice', deviceId);
      expect(gone.ok, `${deviceId} still answered on ${Source}`).to.equal(false);
      expect(gone.ok ? '' : gone.error).to.contain(`DEVICE_MOVED: device ${deviceId} moved to ${Destination}`);
      expect(queryValue<DeviceRecord>(Destination, 'GetDevice', deviceId).DeviceID).to.equal(deviceId);
      const [source] = queryValue<ShardMoveRecord[]>(Source, 'shard-move:ListDeviceMoves', deviceId);
      const [destination] = queryValue<ShardMoveRecord[]>(Destination, 'shard-move:ListDeviceMoves', deviceId);
      if (source === undefined || destination === undefined) throw new Error(`${deviceId}: a move record is missing`);
      expect(source).to.include({ End: 'source', Phase: 'committed', Destination });
      expect(destination).to.include({
        End: 'destination',
        Phase: 'committed',
        Source,
        MoveID: source.MoveID,
        StateDigest: source.StateDigest,
        PrepareTxID: source.PrepareTxID,
        AcceptTxID: source.AcceptTxID,
        SourceCommitTxID: source.SourceCommitTxID,
      });
      moveOf.set(deviceId, { source, destination });
    }

    // Every acknowledged operation exactly once, on the shard that held the device then.
    let lost = 0;
    let duplicated = 0;
    let unacknowledgedApplied = 0;
    for (const deviceId of statusDevices) {
      const move = moveOf.get(deviceId);
      const install = move?.destination.DestinationCommitTxID;
      // Histories come newest first; the enrolment is the entry whose record was never updated.
      const sourceTxs = queryValue<HistoryEntry<DeviceRecord>[]>(Source, 'GetDeviceHistory', deviceId)
        .filter((e) => e.Value !== null && e.Value.UpdatedAt !== e.Value.EnrolledAt)
        .map((e) => e.TxID);
      const destinationTxs = queryValue<HistoryEntry<DeviceRecord>[]>(Destination, 'GetDeviceHistory', deviceId)
        .map((e) => e.TxID)
        .filter((tx) => tx !== install);
      const acked = operations.filter((o) => o.device === deviceId && o.ack?.txId !== undefined);
      for (const op of acked) {
        const found = [...sourceTxs, ...destinationTxs].filter((tx) => tx === op.ack?.txId).length;
        if (found === 0) lost++;
        if (found > 1) duplicated++;
        if (found !== 1)
          console.log(`      ${deviceId} ${op.kind} ${op.ack?.txId ?? ''}: found ${String(found)} times`);
      }
      const ackedTxs = new Set(acked.map((o) => o.ack?.txId));
      unacknowledgedApplied += [...sourceTxs, ...destinationTxs].filter((tx) => !ackedTxs.has(tx)).length;
    }
    // The gateway's audit trail follows a moved device across shards: every transaction Org2 sees
    // in its history on either channel, the source's enrolment included.
    for (const deviceId of devices.slice(0, 2)) {
      const onChannels = [Source, Destination].flatMap((channel) =>
        queryValue<HistoryEntry<DeviceRecord>[]>(channel, 'GetDeviceHistory', deviceId).map((e) => e.TxID),
      );
      const trail = (await operator('GET', `/v1/audit/devices/${deviceId}`)) as {
        entries: { transactionId: string }[];
      };
      expect(
        trail.entries.map((e) => e.transactionId),
        deviceId,
      ).to.have.members(onChannels);
    }
    for (const deviceId of rotatingDevices) {
      const key = queryValue<KeyRecord>(Destination, 'GetKey', keyOf(deviceId));
      const versions = operations
        .filter((o) => o.device === deviceId && o.ack?.version !== undefined)
        .map((o) => o.ack?.version ?? 0);
      for (const version of versions) {
        const found = key.Versions.filter((v) => v.Version === version).length;
        if (found === 0) lost++;
        if (found > 1) duplicated++;
      }
      const base = rotationBase.get(deviceId) ?? 0;
      const applied = key.LatestVersion - base;
      if (applied > versions.length) unacknowledgedApplied += applied - versions.length;
      if (applied < versions.length) lost += versions.length - applied;
      // The rotation's own transaction is in the key's history on exactly one channel.
      const histories = [Source, Destination].map((channel) =>
        queryValue<HistoryEntry<KeyRecord>[]>(channel, 'GetKeyHistory', keyOf(deviceId)).map((e) => e.TxID),
      );
      for (const version of versions) {
        const tx = key.Versions.find((v) => v.Version === version)?.Proof.TxID;
        const copies = histories.flat().filter((t) => t === tx).length;
        if (copies !== 1) duplicated += copies > 1 ? 1 : 0;
        if (copies === 0) lost++;
      }
    }

    const failures = new Map<string, number>();
    for (const op of operations) {
      if (op.failure !== null) failures.set(op.failure, (failures.get(op.failure) ?? 0) + 1);
    }
    const acknowledged = operations.filter((o) => o.ack !== null).length;
    const seconds = job.report?.seconds ?? 0;
    console.log(
      [
        `      re-sharding under load: ${String(DeviceCount)} devices ${Source} -> ${Destination} in ${seconds.toFixed(1)} s`,
        `        (${((seconds / DeviceCount) * 1000).toFixed(0)} s per 1,000 devices, ${String(job.report?.batches)} batches)`,
        `      operations: attempted ${String(operations.length)}, acknowledged ${String(acknowledged)}, ` +
          `failed ${String(operations.length - acknowledged)}` +
          (failures.size === 0 ? '' : ` (${[...failures].map(([code, n]) => `${code}: ${String(n)}`).join(', ')})`),
      ].join('\n') +
        `\n      lost ${String(lost)}, duplicated ${String(duplicated)}, applied without acknowledgement ${String(unacknowledgedApplied)}`,
    );
    expect(acknowledged, 'the load ran').to.be.above(DeviceCount);
    expect(lost, 'lost operations').to.equal(0);
    expect(duplicated, 'duplicated operations').to.equal(0);
  });

  it('moves the group back with the command, without load: the time per device with no contention', async () => {
    const started = (await operator('POST', '/v1/shards/moves', { group: Group, to: Source })) as { jobId: string };
    let job: { state: string; report: { moved: number; batches: number; failed: unknown[]; seconds: number } | null };
    do {
      await new Promise((r) => setTimeout(r, 500));
      job = (await operator('GET', `/v1/shards/moves/${started.jobId}`)) as typeof job;
    } while (job.state === 'running');
    expect(job.state).to.equal('done');
    expect(job.report?.moved).to.equal(DeviceCount);
    const seconds = job.report?.seconds ?? 0;
    console.log(
      `      re-sharding without load: ${String(DeviceCount)} devices ${Destination} -> ${Source} in ${seconds.toFixed(1)} s` +
        ` (${((seconds / DeviceCount) * 1000).toFixed(0)} s per 1,000 devices, ${String(job.report?.batches)} batches)`,
    );
    for (const deviceId of devices) {
      expect(queryValue<DeviceRecord>(Source, 'GetDevice', deviceId).DeviceID).to.equal(deviceId);
      const gone = query(Destination, 'GetDevice', deviceId);
      expect(gone.ok ? '' : gone.error).to.contain(`moved to ${Source}`);
      expect(queryValue<ShardMoveRecord[]>(Source, 'shard-move:ListDeviceMoves', deviceId)).to.have.length(2);
    }
  });
});
