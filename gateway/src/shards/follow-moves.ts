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

/** What following a move needs of the shard router. */
export interface MoveRouting {
  shardIndex(channel: string): number;
  readonly directory: { assignDevice(deviceId: string, shard: number): void };
}

export interface FollowMovesOptions {
  readonly retryForMs?: number;
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

  return {
    write: <T>(action: LedgerAction, fields: Readonly<Record<string, unknown>>): Promise<Written<T>> =>
      follow(() => inner.write<T>(action, fields)),
    read: <T>(transaction: LedgerAction, ...args: string[]): Promise<T> =>
      follow(() => inner.read<T>(transaction, ...args)),
  };
}
