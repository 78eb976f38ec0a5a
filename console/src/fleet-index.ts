import type { AttestationBatchRecord, AttestationRecord, DeviceRecord, KeyRecord } from '@keyfleet/protocol';
import type { BlockTransaction } from '@keyfleet/gateway';

/** What the console's charts show, derived from the blocks alone. */
export interface FleetStats {
  /** The blocks read so far: every figure covers blocks 0 … Height-1. */
  readonly Height: number;
  /** Devices by group, then by status, as the latest write of each device record left them. */
  readonly Devices: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** Key rotations (a record's LatestVersion rising) per hour, by the transaction's time. */
  readonly Rotations: readonly { readonly Hour: string; readonly Count: number }[];
  /** Attestation verdicts per hour: one-by-one results by status, and batched results. */
  readonly Verdicts: readonly VerdictHour[];
}

export interface VerdictHour {
  readonly Hour: string;
  readonly affirming: number;
  readonly warning: number;
  readonly contraindicated: number;
  /** Results anchored in a batch and not contraindicated (the ledger holds only their root). */
  readonly batched: number;
}

/** The block reads the index needs: the auditor's view of the chain (qscc). */
export interface BlockSource {
  height(): Promise<number>;
  block(blockNumber: number): Promise<readonly BlockTransaction[]>;
}

export interface FleetIndex {
  /** Reads the blocks committed since the last call, then answers the figures. */
  stats(): Promise<FleetStats>;
}

type Verdict = Exclude<keyof VerdictHour, 'Hour'>;

/**
 * The fleet's figures from the chain itself: every valid transaction of the contract's namespace,
 * oldest first, through the values it wrote (the write set the block carries). Followed
 * incrementally — a call reads only the blocks committed since the last — so a fleet of 100,000
 * devices costs one pass over the chain at the first call, not one per page view.
 */
export function newFleetIndex(source: BlockSource, chaincode: string): FleetIndex {
  let next = 0;
  const devices = new Map<string, { group: string; status: string }>();
  const latestVersions = new Map<string, number>();
  const rotations = new Map<string, number>();
  const verdicts = new Map<string, Record<Verdict, number>>();
  let reading: Promise<void> | undefined;

  const verdictsAt = (hour: string) => {
    let counts = verdicts.get(hour);
    if (!counts) {
      counts = { affirming: 0, warning: 0, contraindicated: 0, batched: 0 };
      verdicts.set(hour, counts);
    }
    return counts;
  };

  const apply = (tx: BlockTransaction) => {
    if (tx.chaincode !== chaincode || tx.validationCode !== 0) return;
    const hour = `${tx.timestamp.slice(0, 13)}:00Z`;
    for (const write of tx.writes) {
      if (write.namespace !== chaincode || write.isDelete) continue;
      const value = parsed(write.value);
      switch (value?.DocType) {
        case 'device': {
          const device = value as unknown as DeviceRecord;
          devices.set(device.DeviceID, { group: device.Group, status: device.Status });
          break;
        }
        case 'key': {
          const key = value as unknown as KeyRecord;
          const before = latestVersions.get(key.KeyID);
          if (before !== undefined && key.LatestVersion > before) {
            rotations.set(hour, (rotations.get(hour) ?? 0) + key.LatestVersion - before);
          }
          latestVersions.set(key.KeyID, key.LatestVersion);
          break;
        }
        case 'attestation': {
          const status: string = (value as unknown as AttestationRecord).Status;
          if (status === 'affirming' || status === 'warning' || status === 'contraindicated')
            verdictsAt(hour)[status]++;
          break;
        }
        case 'attestation-batch': {
          const batch = value as unknown as AttestationBatchRecord;
          verdictsAt(hour).contraindicated += batch.Contraindicated.length;
          verdictsAt(hour).batched += batch.Count - batch.Contraindicated.length;
          break;
        }
        default:
          break;
      }
    }
  };

  const catchUp = async () => {
    const height = await source.height();
    while (next < height) {
      for (const tx of await source.block(next)) apply(tx);
      next++;
    }
  };

  return {
    async stats() {
      // One reader at a time: concurrent page views wait for the same pass.
      reading ??= catchUp().finally(() => (reading = undefined));
      await reading;
      const byGroup: Record<string, Record<string, number>> = {};
      for (const { group, status } of devices.values()) {
        const counts = (byGroup[group] ??= {});
        counts[status] = (counts[status] ?? 0) + 1;
      }
      return {
        Height: next,
        Devices: byGroup,
        Rotations: [...rotations].sort(([a], [b]) => a.localeCompare(b)).map(([Hour, Count]) => ({ Hour, Count })),
        Verdicts: [...verdicts].sort(([a], [b]) => a.localeCompare(b)).map(([Hour, counts]) => ({ Hour, ...counts })),
      };
    },
  };
}

function parsed(value: string): Record<string, unknown> | undefined {
  try {
    const json = JSON.parse(value) as unknown;
    return json !== null && typeof json === 'object' ? (json as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
