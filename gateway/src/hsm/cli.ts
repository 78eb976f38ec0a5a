/**
 * `node gateway/dist/hsm/cli.js <command>`: the HSM layer's own small composition root, used by
 * scripts/softhsm-init.sh. Reads KEYFLEET_HSM_URI, KEYFLEET_HSM_MODULE and KEYFLEET_HSM_PIN or
 * KEYFLEET_HSM_PIN_FILE. Never prints a PIN.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureKeys, gatewayKeys, isHsmError, newHsm, verifierKeys, type HsmOptions, type PinSource } from './index.js';
import { initToken } from './token-init.js';
import { provisionClusterKek } from './cluster/ceremony.js';

const usage = `usage: node gateway/dist/hsm/cli.js <command>

commands:
  init-token                    initialise token KEYFLEET_HSM_TOKEN (default keyfleet) in a free
                                slot unless it exists; PINs from KEYFLEET_HSM_SO_PIN and
                                KEYFLEET_HSM_PIN (development stores only)
  ensure-keys [--pem-dir DIR]   create the keys that are missing (the operator gateway's, or
                                with KEYFLEET_HSM_KEY_SET=verifier the verifier service's); with
                                --pem-dir, write each public key to DIR/<label>.pem
  list                          list the key objects on the token
  cluster-init                  the security officer's ceremony of an HSM cluster: make the
                                cluster KEK in the first of KEYFLEET_HSM_CLUSTER_TOKENS (or take
                                it from the first that has it) and bring it into every other;
                                SO PIN from KEYFLEET_HSM_SO_PIN or KEYFLEET_HSM_SO_PIN_FILE;
                                run it again with a new token listed to add that token
                                (docs/hsm-cluster.md)

environment:
  KEYFLEET_HSM_URI       token URI (default pkcs11:token=keyfleet)
  KEYFLEET_HSM_MODULE    PKCS#11 library (default /usr/lib/softhsm/libsofthsm2.so)
  KEYFLEET_HSM_PIN       user PIN, or
  KEYFLEET_HSM_PIN_FILE  file holding the user PIN
  KEYFLEET_HSM_KEY_SET   gateway (default) or verifier: which keys ensure-keys makes
  KEYFLEET_HSM_REPLICABLE  1: ensure-keys makes keys for an HSM cluster (extractable only
                         under the SO's trusted cluster KEK)
  KEYFLEET_HSM_CLUSTER_TOKENS  comma-separated token labels of the cluster (cluster-init)
`;

type Env = Readonly<Record<string, string | undefined>>;

function optionsFrom(env: Env): HsmOptions {
  const nonEmpty = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value === '' ? undefined : value;
  };
  const pinFile = nonEmpty('KEYFLEET_HSM_PIN_FILE');
  const pin: PinSource =
    nonEmpty('KEYFLEET_HSM_PIN') === undefined && pinFile !== undefined
      ? { file: pinFile }
      : { env: 'KEYFLEET_HSM_PIN' };
  return {
    uri: nonEmpty('KEYFLEET_HSM_URI') ?? 'pkcs11:token=keyfleet',
    modulePath: nonEmpty('KEYFLEET_HSM_MODULE') ?? '/usr/lib/softhsm/libsofthsm2.so',
    pin,
    env,
    sessions: 1,
  };
}

async function main(args: readonly string[], env: Env): Promise<number> {
  const [command, ...rest] = args;
  if (command === undefined || command === '-h' || command === '--help') {
    process.stdout.write(usage);
    return command === undefined ? 2 : 0;
  }
  if (command === 'init-token' && rest.length === 0) {
    const soPin = env.KEYFLEET_HSM_SO_PIN ?? '';
    const pin = env.KEYFLEET_HSM_PIN ?? '';
    const label = env.KEYFLEET_HSM_TOKEN ?? 'keyfleet';
    if (soPin === '' || pin === '') {
      process.stderr.write('init-token needs KEYFLEET_HSM_SO_PIN and KEYFLEET_HSM_PIN\n');
      return 2;
    }
    const created = initToken(optionsFrom(env).modulePath ?? '', label, soPin, pin);
    process.stdout.write(`${created ? 'initialised' : 'exists     '} token ${label}\n`);
    return 0;
  }
  if (command === 'cluster-init' && rest.length === 0) {
    const tokens = (env.KEYFLEET_HSM_CLUSTER_TOKENS ?? '')
      .split(',')
      .map((t) => t.trim())
      .filter((t) => t !== '');
    const soPinFile = env.KEYFLEET_HSM_SO_PIN_FILE ?? '';
    const soPin =
      (env.KEYFLEET_HSM_SO_PIN ?? '') !== ''
        ? (env.KEYFLEET_HSM_SO_PIN ?? '')
        : soPinFile === ''
          ? ''
          : readFileSync(soPinFile, 'utf8').replace(/\r?\n$/, '');
    if (soPin === '' || tokens.length < 2) {
      process.stderr.write(
        'cluster-init needs KEYFLEET_HSM_SO_PIN (or _FILE) and two or more KEYFLEET_HSM_CLUSTER_TOKENS\n',
      );
      return 2;
    }
    const result = provisionClusterKek(optionsFrom(env).modulePath ?? '', tokens, soPin);
    for (const token of result.tokens) process.stdout.write(`${token.action.padEnd(8)} ${token.label}\n`);
    process.stdout.write(`cluster KEK check value ${result.kekCheckValue}\n`);
    return 0;
  }
  if (command !== 'ensure-keys' && command !== 'list') {
    process.stderr.write(`unknown command "${command}"\n${usage}`);
    return 2;
  }
  let pemDir: string | undefined;
  if (command === 'ensure-keys' && rest[0] === '--pem-dir' && rest[1] !== undefined && rest.length === 2) {
    pemDir = rest[1];
  } else if (rest.length > 0) {
    process.stderr.write(`unexpected arguments: ${rest.join(' ')}\n${usage}`);
    return 2;
  }

  const keySets = { gateway: gatewayKeys, verifier: verifierKeys } as const;
  const keySet = env.KEYFLEET_HSM_KEY_SET ?? 'gateway';
  if (keySet !== 'gateway' && keySet !== 'verifier') {
    process.stderr.write(`KEYFLEET_HSM_KEY_SET must be gateway or verifier, got "${keySet}"\n`);
    return 2;
  }

  const hsm = await newHsm(optionsFrom(env));
  try {
    if (command === 'list') {
      for (const key of await hsm.findKeys()) {
        const flags = [
          key.kind,
          key.keyType,
          key.sensitive === true ? 'sensitive' : '',
          key.extractable === false ? 'non-extractable' : '',
          ...key.usage,
        ].filter((f) => f !== '');
        process.stdout.write(`${key.label}\t${Buffer.from(key.id).toString('hex')}\t${flags.join(',')}\n`);
      }
      return 0;
    }
    const result = await ensureKeys(hsm, keySets[keySet], { replicable: env.KEYFLEET_HSM_REPLICABLE === '1' });
    for (const label of result.created) process.stdout.write(`created ${label}\n`);
    for (const label of result.existing) process.stdout.write(`exists  ${label}\n`);
    if (pemDir !== undefined) {
      mkdirSync(pemDir, { recursive: true });
      for (const [label, key] of Object.entries(result.publicKeys)) {
        writeFileSync(join(pemDir, `${label}.pem`), key.pem);
      }
    }
    return 0;
  } finally {
    await hsm.close();
  }
}

if (require.main === module) {
  main(process.argv.slice(2), process.env).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      // HsmError messages are safe to print: they never carry the PIN.
      process.stderr.write(isHsmError(err) ? `${err.code}: ${err.message}\n` : `${String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
