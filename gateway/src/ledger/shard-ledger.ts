import type { FabricTransport, ShardChannels } from './fabric';
import type { LedgerClient } from './ledger-client';
import { newShardRouter, type ShardRouter } from './shard-router';

export interface ShardLedgerOptions {
  readonly channels: ShardChannels;
  /** Shard 0 (`keyfleet`), already open: its transport and the client the service made on it. */
  readonly home: { readonly transport: FabricTransport; readonly client: LedgerClient };
  /** Opens a transport on another channel, as the same identity. */
  readonly openTransport: (channel: string) => Promise<FabricTransport>;
  /** The service's client on a channel: makes sure its trust anchors are registered there first. */
  readonly clientOn: (transport: FabricTransport) => Promise<LedgerClient>;
}

export interface ShardLedger {
  readonly router: ShardRouter;
  /** Every shard's transport, index = shard (0 is `home`'s); for events and health. */
  readonly shardTransports: readonly FabricTransport[];
  /** Closes the transports this opened (not `home`'s). */
  close(): Promise<void>;
}

/**
 * Opens the other shard channels and the governance channel as the service's identity, makes sure
 * the service's trust anchors are on each (every channel's contract checks writes against its own),
 * and puts the shard router over them. One channel at a time: the first start enrols the identity
 * with the CA on shard 0, and later channels reuse that certificate.
 */
export async function openShardLedger(options: ShardLedgerOptions): Promise<ShardLedger> {
  const { channels, home } = options;
  const opened: FabricTransport[] = [];
  const close = async () => {
    for (const transport of opened.reverse()) await transport.close().catch(() => undefined);
  };
  try {
    const clientOf = async (channel: string) => {
      const transport = await options.openTransport(channel);
      opened.push(transport);
      return { channel, transport, client: await options.clientOn(transport) };
    };
    const others = [];
    for (const channel of channels.shards.slice(1)) others.push(await clientOf(channel));
    const governance = await clientOf(channels.governance);
    const shards = [{ channel: channels.shards[0] ?? '', transport: home.transport, client: home.client }, ...others];
    return {
      router: newShardRouter({ shards, governance }),
      shardTransports: shards.map((s) => s.transport),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
