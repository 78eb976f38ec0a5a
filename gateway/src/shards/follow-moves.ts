/**
 * Requests that meet a device in the middle of a shard move (docs/gateway.md, "Shards"). The
 * gateway answers them itself rather than passing the move on to its callers:
 *
 * - `DEVICE_MOVED` (the device left the shard asked): the refusal names the destination; the
 *   device's shard is learnt from it and the request is sent there at once.
 * - `DEVICE_MOVING` (frozen on the source, or staged on the destination; a move takes a few block
 *   times): the request is sent again with a growing pause, for at most `retryForMs` (default 20 s).
 *   After that the caller gets the refusal: HTTP 503 with detail `DEVICE_MOVING`, to retry later.
 *
 * A refused transaction wrote nothing, so sending the request again applies it once.
 */
import { ErrorCode, movedDeviceOf } from '@keyfleet/protocol';
import type { LedgerAction, LedgerClient, Written } from '../ledger/ledger-client';
import { ledgerRefusalCode } from '../ledger/port';
import type { MoveGate } from './move-gate';

/** What following a move needs of the shard router. */
export interface MoveRouting {
  shardIndex(channel: string): number;
  readonly directory: { assignDevice(deviceId: string, shard: number): void };
}

export interface FollowMovesOptions {
  readonly retryForMs?: number;
  /** This gateway's own moves: requests for a device being moved wait for its batch first. */
  readonly gate?: MoveGate;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
}

/** Hops a request may follow (a device moved twice while the request was on its way). */
const MaxHops = 4;

export function followShardMoves(
  inner: LedgerClient,
  routing: MoveRouting,
  options: FollowMovesOptions = {},
): LedgerClient {
  const retryForMs = options.retryForMs ?? 20_000;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((done) => setTimeout(done, ms)));
  const now = options.now ?? Date.now;

  const follow = async <T>(run: () => Promise<T>): Promise<T> => {
    const started = now();
    let hops = 0;
    let pause = 100;
    for (;;) {
      try {
        return await run();
      } catch (err) {
        const code = ledgerRefusalCode(err);
        const moved = code === ErrorCode.DeviceMoved ? movedDeviceOf((err as Error).message) : null;
        if (moved !== null && hops < MaxHops) {
          hops++;
          routing.directory.assignDevice(moved.deviceId, routing.shardIndex(moved.destination));
          continue;
        }
        if (code === ErrorCode.DeviceMoving && now() - started + pause <= retryForMs) {
          await sleep(pause);
          pause = Math.min(pause * 2, 2_000);
          continue;
        }
        throw err;
      }
    }
  };

  const gated = async <T>(ids: readonly string[], run: () => Promise<T>): Promise<T> => {
    await options.gate?.passed(ids, retryForMs);
    return follow(run);
  };

  return {
    write: <T>(action: LedgerAction, fields: Readonly<Record<string, unknown>>): Promise<Written<T>> =>
      gated(idsOf(fields), () => inner.write<T>(action, fields)),
    read: <T>(transaction: LedgerAction, ...args: string[]): Promise<T> =>
      gated(args.slice(0, 1), () => inner.read<T>(transaction, ...args)),
  };
}

/** The device and key ids a write names (`DeviceID`, `KeyID`, a nonce's `Subject`, a key's owner). */
function idsOf(fields: Readonly<Record<string, unknown>>): string[] {
  const owner = fields.Owner as { ID?: unknown } | undefined;
  return [fields.DeviceID, fields.KeyID, fields.Subject, owner?.ID].filter((v): v is string => typeof v === 'string');
}
