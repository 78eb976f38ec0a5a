import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  checkpointers,
  GatewayError as FabricGatewayError,
  type ChaincodeEvent,
  type CloseableAsyncIterable,
  type Network,
} from '@hyperledger/fabric-gateway';
import { GatewayError, GatewayErrorCode } from '../errors';
import { chainHeight } from './blocks';
import type { LedgerEvents, LedgerEventStream } from './events';

export interface FabricEventsOptions {
  /** The channel through the peer to use now (the transport fails over between its org's peers). */
  readonly network: () => Network;
  readonly channel: string;
  readonly chaincode: string;
  /**
   * This process's own directory for one channel and chaincode: fabric-gateway's file checkpoint
   * (`checkpoint.json`), the ledger's identity (`ledger-id`), and whatever the caller derives from
   * the events and keeps beside them.
   */
  readonly stateDir: string;
}

/** The checkpoint file, fabric-gateway's `checkpointers.file` format: `{blockNumber, transactionId}`. */
export const CheckpointFile = 'checkpoint.json';
const LedgerIdFile = 'ledger-id';

/**
 * The contract's chaincode events through the Fabric Gateway service (`getChaincodeEvents` with a
 * file checkpointer). With no checkpoint, a stream starts at block 0, so state derived from the
 * events (the deny set) covers the whole ledger. The stream's gRPC deadline is the transport's
 * `chaincodeEventsOptions`: a stream ends when it passes, and the next one resumes from the
 * checkpoint, which also bounds how long a silently dead connection can go unnoticed.
 *
 * A state directory kept from another ledger (a network made anew: another genesis block) would
 * resume at a block of that ledger and keep its devices: everything in it is discarded first.
 */
export async function openFabricEvents(options: FabricEventsOptions): Promise<LedgerEvents> {
  const { network, channel, chaincode, stateDir } = options;
  const qscc = () => network().getContract('qscc');
  await mkdir(stateDir, { recursive: true });
  await claimForLedger(stateDir, await ledgerId(qscc(), channel));
  const checkpointer = await checkpointers.file(join(stateDir, CheckpointFile)).catch((err: unknown) => {
    throw new GatewayError(
      GatewayErrorCode.ConfigInvalid,
      `the event checkpoint ${join(stateDir, CheckpointFile)} cannot be read; remove ${stateDir} to follow the events again from block 0`,
      undefined,
      { cause: err },
    );
  });

  return {
    async open(): Promise<LedgerEventStream> {
      let events: CloseableAsyncIterable<ChaincodeEvent>;
      try {
        events = await network().getChaincodeEvents(chaincode, { checkpoint: checkpointer, startBlock: 0n });
      } catch (err) {
        throw unavailable(err);
      }
      return {
        close: () => {
          events.close();
        },
        async *[Symbol.asyncIterator]() {
          try {
            for await (const event of events) {
              yield {
                name: event.eventName,
                payload: event.payload,
                blockNumber: event.blockNumber,
                transactionId: event.transactionId,
              };
            }
          } catch (err) {
            // The stream's deadline: a routine end, the next stream resumes from the checkpoint.
            if (err instanceof FabricGatewayError && err.code === (grpc.status.DEADLINE_EXCEEDED as number)) return;
            throw unavailable(err);
          }
        },
      };
    },
    checkpoint: (event) => checkpointer.checkpointTransaction(event.blockNumber, event.transactionId),
    checkpointBlock: () => checkpointer.getBlockNumber(),
    async height() {
      try {
        return BigInt(chainHeight(await qscc().evaluate('GetChainInfo', { arguments: [channel] })));
      } catch (err) {
        throw unavailable(err);
      }
    },
  };
}

function unavailable(err: unknown): GatewayError {
  return new GatewayError(GatewayErrorCode.LedgerUnavailable, 'the chaincode event stream failed', undefined, {
    cause: err,
  });
}

/** SHA-256 of the channel's genesis block as qscc returns it: which ledger this is. */
async function ledgerId(qscc: ReturnType<Network['getContract']>, channel: string): Promise<string> {
  try {
    const genesis = await qscc.evaluate('GetBlockByNumber', { arguments: [channel, '0'] });
    return createHash('sha256').update(genesis).digest('hex');
  } catch (err) {
    throw unavailable(err);
  }
}

/** Empties `dir` when it was kept for another ledger, then marks it as this ledger's. */
async function claimForLedger(dir: string, id: string): Promise<void> {
  const file = join(dir, LedgerIdFile);
  const kept = await readFile(file, 'utf8').catch(() => null);
  if (kept === id) return;
  if (kept !== null) {
    for (const entry of await readdir(dir)) await rm(join(dir, entry), { recursive: true, force: true });
  }
  await writeFile(file, id);
}
