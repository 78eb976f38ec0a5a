import { readFileSync } from 'node:fs';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string };
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Where a frame's time goes, decided by its own URL or function (first match wins). */
const categories: readonly (readonly [string, (frame: ProfileNode['callFrame']) => boolean])[] = [
  ['idle (waiting on HSM threads, sockets)', (f) => f.functionName === '(idle)'],
  ['garbage collection', (f) => f.functionName === '(garbage collector)'],
  ['HSM calls (main-thread part)', (f) => /pkcs11js|gateway\/dist\/hsm\//.test(f.url)],
  [
    'Fabric client (fabric-gateway, gRPC, protobuf)',
    (f) => /@hyperledger\/fabric-(gateway|protos)|@grpc\/|google-protobuf|node:internal\/http2/.test(f.url),
  ],
  ['shared rules (@keyfleet/protocol: canonical JSON, Merkle)', (f) => /protocol\/dist/.test(f.url)],
  ['X.509 / ASN.1 (@peculiar, asn1js)', (f) => /@peculiar|asn1js|pvtsutils|tsyringe/.test(f.url)],
  ['JOSE / node:crypto', (f) => /node_modules\/jose|node:internal\/crypto/.test(f.url)],
  [
    'HTTP (fastify, ajv, pino, node:http)',
    (f) =>
      /fastify|find-my-way|avvio|ajv|pino|light-my-request|node:_http|node:net|node:internal\/(http|stream|streams)/.test(
        f.url,
      ),
  ],
  ['gateway logic', (f) => f.url.includes('gateway/dist')],
  ['other JS and native', () => false],
];

/**
 * Self time of a V8 CPU profile (main thread), attributed to the nearest frame on the stack that
 * falls into a category, so a builtin such as JSON.stringify counts for whoever called it.
 */
export function summariseProfile(file: string): {
  categories: { category: string; ms: number; share: number }[];
  topFunctions: { fn: string; share: number }[];
} {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const parent = new Map<number, number>();
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const memo = new Map<number, string>();
  const categoryOf = (id: number): string => {
    const known = memo.get(id);
    if (known !== undefined) return known;
    const node = byId.get(id);
    let found: string | undefined;
    if (node !== undefined) {
      for (const [name, test] of categories) {
        if (test(node.callFrame)) {
          found = name;
          break;
        }
      }
    }
    const up = parent.get(id);
    const result = found ?? (up === undefined ? 'other JS and native' : categoryOf(up));
    memo.set(id, result);
    return result;
  };
  const totals = new Map<string, number>();
  const selfByFunction = new Map<string, number>();
  let all = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    all += us;
    const frame = byId.get(id)?.callFrame;
    const fn = `${frame?.functionName || '(anonymous)'} ${frame?.url.split('/').slice(-2).join('/') ?? ''}`;
    selfByFunction.set(fn, (selfByFunction.get(fn) ?? 0) + us);
    const category = categoryOf(id);
    totals.set(category, (totals.get(category) ?? 0) + us);
  });
  return {
    categories: [...totals]
      .map(([category, us]) => ({ category, ms: us / 1000, share: all > 0 ? us / all : 0 }))
      .sort((a, b) => b.ms - a.ms),
    topFunctions: [...selfByFunction]
      .map(([fn, us]) => ({ fn, share: all > 0 ? us / all : 0 }))
      .sort((a, b) => b.share - a.share)
      .slice(0, 12),
  };
}
