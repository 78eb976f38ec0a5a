import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { openLedgerReader, type BlockTransaction } from '@keyfleet/gateway';

/**
 * The real Fabric network every integration suite runs on: started once per test run on its own
 * ports and directory (so it never meets `npm start`'s network), stopped when the run ends. Each
 * suite deploys the chaincode under a chaincode name of its own, so suites share the network but
 * not their state.
 */
const repoRoot = resolve(__dirname, '..', '..', '..');
const portBase = Number(process.env.KEYFLEET_TEST_PORT_BASE ?? 17000);
export const networkDir = resolve(repoRoot, '.fabric', `test-${String(portBase)}`);
export const connectionProfile = join(networkDir, 'connection.json');

/** Runs network/network.sh on the test network and answers its standard output. */
export function networkScript(...args: string[]): string {
  return networkScriptAt(networkDir, portBase, ...args);
}

/** A second network beside the test network: its own directory and ports. */
export const besideNetwork = { dir: `${networkDir}-beside`, portBase: portBase + 200 };

/**
 * The networks of network-hsm.test.ts and network-shards.test.ts, each up only during its suite.
 * Every network of a test run has a hundred-port block of its own (a network takes its base +0 …
 * +101): test network +0, beside +200, faults +350, soak +460, shards +610, hsm +720.
 */
export const shardNetwork = { dir: `${networkDir}-shards`, portBase: portBase + 610 };
export const hsmNetwork = { dir: `${networkDir}-hsm`, portBase: portBase + 720 };

export function networkScriptAt(dir: string, base: number, ...args: string[]): string {
  return execFileSync('bash', [join(repoRoot, 'network', 'network.sh'), ...args, '--dir', dir], {
    env: { ...process.env, KEYFLEET_NETWORK_PORT_BASE: String(base) },
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
}

/** mocha: before the first suite. */
export function mochaGlobalSetup(): void {
  networkScript('up');
  networkScript('deploy');
}

/** mocha: after the last suite, failed or not (scripts/test.sh also stops it on an interrupt). */
export function mochaGlobalTeardown(): void {
  for (const other of [besideNetwork, hsmNetwork, shardNetwork]) networkScriptAt(other.dir, other.portBase, 'down');
  if (process.env.KEYFLEET_TEST_KEEP_NETWORK === '1') return;
  networkScript('down');
}

let namespaces = 0;

/**
 * Deploys the chaincode under a fresh name: an empty ledger state for one suite. `ccaas` runs it
 * in the network's chaincode servers; `node` as the conventional `--lang node` package that the
 * peer builds and launches itself (network/builders/node).
 */
export function newNamespace(label: string, lang: 'ccaas' | 'node' = 'ccaas'): string {
  namespaces += 1;
  const name = `kf-${label}-${String(process.pid)}-${String(namespaces)}`.toLowerCase().slice(0, 48);
  networkScript('deploy', '--name', name, '--lang', lang);
  return name;
}

/**
 * `peer chaincode query` — Fabric's own CLI, not keyfleet code — as an identity of an organisation
 * (`network.sh env Org2 auditor`), its JSON answer parsed: what an auditor sees with Fabric's tools.
 */
export function peerQuery(chaincode: string, identity: { org: string; name: string }, ...args: string[]): unknown {
  const env = networkScript('env', identity.org, identity.name);
  const out = execFileSync(
    'bash',
    [
      '-c',
      `${env}\npeer chaincode query -C "$KEYFLEET_CHANNEL" -n "$1" -c "$2"`,
      'peer-query',
      chaincode,
      JSON.stringify({ Args: args }),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' },
  );
  return JSON.parse(out) as unknown;
}

/** The gateway configuration that points at the test network and a namespace. */
export function fabricEnv(chaincode: string): Record<string, string> {
  return { KEYFLEET_FABRIC_CONNECTION: connectionProfile, KEYFLEET_FABRIC_CHAINCODE: chaincode };
}

/**
 * The ledger as an auditor of Org2 sees it, through Org2's peer with Org2's own identity (a
 * file key from its Fabric CA): never through keyfleet's gateway.
 */
export interface LedgerView {
  /** A read-only transaction of the namespace's contract, its JSON answer parsed. */
  evaluate<T>(transaction: string, ...args: string[]): Promise<T>;
  /** The channel's block height: unchanged means nothing was written. */
  height(): Promise<number>;
  /** Every transaction of this namespace, oldest first, from the blocks (qscc). */
  transactions(): Promise<BlockTransaction[]>;
  close(): void;
}

export function openLedgerView(chaincode: string, identity = 'auditor', profile = connectionProfile): LedgerView {
  const reader = openLedgerReader(profile, 'Org2', identity);
  const blocks = new Map<number, BlockTransaction[]>();
  const decoder = new TextDecoder();
  return {
    async evaluate<T>(transaction: string, ...args: string[]) {
      return JSON.parse(decoder.decode(await reader.evaluate(chaincode, transaction, ...args))) as T;
    },
    height: () => reader.height(),
    async transactions() {
      const top = await reader.height();
      const out: BlockTransaction[] = [];
      for (let n = 0; n < top; n++) {
        let txs = blocks.get(n);
        if (!txs) {
          txs = await reader.block(n);
          blocks.set(n, txs);
        }
        out.push(...txs.filter((t) => t.chaincode === chaincode));
      }
      return out;
    },
    close: () => {
      reader.close();
    },
  };
}
