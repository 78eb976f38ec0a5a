#!/usr/bin/env node
/**
 * `node gateway/dist/verifier-tls-cli.js issue-console-cert --out DIR [--names a,b]`: Org2's TLS
 * CA (the `tls-ca` key in the verifier's token) certifies a fresh key for the auditor's console,
 * which holds no HSM of its own; writes DIR/tls-cert.pem and DIR/tls-key.pem (0600). Reads the
 * verifier's settings (KEYFLEET_VERIFIER_HSM_*, KEYFLEET_VERIFIER_DATA_DIR); the verifier must
 * have started once, so that its tls-ca.pem (what the console's clients trust) exists.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { newDeviceCa } from './ca/device-ca';
import { hsmSigningKey } from './crypto/hsm-key';
import { newHsm } from './hsm';
import { writeServerCertificateFiles } from './http/certificate-files';
import { isServerName } from './http/tls';
import { TLS_CA_FILE } from './verifier-app';
import { loadVerifierConfig } from './verifier-config';

const usage = `usage: node gateway/dist/verifier-tls-cli.js issue-console-cert --out DIR [--names localhost,127.0.0.1,::1]\n`;

async function main(args: readonly string[]): Promise<number> {
  const [command, outFlag, out, namesFlag, names, ...extra] = args;
  const namesOk = namesFlag === undefined || (namesFlag === '--names' && names !== undefined);
  if (command !== 'issue-console-cert' || outFlag !== '--out' || out === undefined || !namesOk || extra.length > 0) {
    process.stderr.write(usage);
    return 2;
  }
  const list = (names ?? 'localhost,127.0.0.1,::1').split(',').map((n) => n.trim());
  const bad = list.filter((n) => !isServerName(n));
  if (bad.length > 0) {
    process.stderr.write(`--names: neither a DNS name nor an IP address: ${JSON.stringify(bad)}\n${usage}`);
    return 2;
  }
  const config = loadVerifierConfig(process.env);
  const caFile = join(config.dataDir, TLS_CA_FILE);
  const certificatePem = await readFile(caFile, 'utf8').catch(() => {
    throw new Error(`${caFile} cannot be read: start the verifier once, it makes its TLS CA certificate`);
  });
  const hsm = await newHsm({ uri: config.hsm.tokenUri, modulePath: config.hsm.modulePath, pin: config.hsm.pin });
  try {
    const ca = await newDeviceCa({ key: await hsmSigningKey(hsm, 'tls-ca'), certificatePem });
    const files = await writeServerCertificateFiles(ca, list, out);
    process.stdout.write(`${JSON.stringify({ ...files, names: list, issuer: caFile })}\n`);
    return 0;
  } finally {
    await hsm.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
