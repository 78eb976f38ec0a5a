#!/usr/bin/env node
/**
 * keyfleet-agent: the device agent from a shell.
 *
 *   keyfleet-agent enrol --token T --gateway URL --id D --keystore F [--metadata-key PEMFILE]
 *   keyfleet-agent rotate --key K --keystore F [--gateway URL]
 *   keyfleet-agent check-in --keystore F [--gateway URL]
 *
 * `--help` (or `-h`), alone or after a command, prints that usage (exit 0). Prints one JSON object
 * on success; on failure, the error code and message in one line on stderr: exit 2 for a usage error
 * (it names the missing or bad option), 1 for anything else. The enrolment token may also come from
 * KEYFLEET_ENROLMENT_TOKEN (it is a credential: argv is visible to other users of the machine).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { newAgent } from './agent.js';
import { parseArgsProblem, UsageError } from './cli-args.js';
import { AgentErrorCode, isAgentError } from './errors.js';
import { tlsTrustFromEnv, type TlsTrust } from './http/tls.js';

const commands = {
  enrol: {
    synopsis: 'keyfleet-agent enrol --token T --gateway URL --id D --keystore F [--metadata-key PEMFILE]',
    help: `Enrols this device: makes its key in the keystore and asks the gateway for its certificate.

  --token T               the enrolment token from 'keyfleet devices token' (or KEYFLEET_ENROLMENT_TOKEN,
                          which other users of the machine cannot read from the process list)
  --gateway URL           the gateway's base URL, e.g. https://127.0.0.1:8080
  --id D                  this device's id, as the token names it
  --keystore F            the keystore file (created 0600)
  --metadata-key PEMFILE  the gateway's metadata-signing public key to pin; without it, the key the
                          enrolment answer names is pinned`,
  },
  rotate: {
    synopsis: 'keyfleet-agent rotate --key K --keystore F [--gateway URL]',
    help: `Fetches the next version of a device-owned key and acknowledges it.

  --key K                 the key id
  --keystore F            the keystore of an enrolled device
  --gateway URL           another gateway than the one the device enrolled with`,
  },
  'check-in': {
    synopsis: 'keyfleet-agent check-in --keystore F [--gateway URL]',
    help: `Delivers pending acknowledgements, and rotates the keys the gateway says are due.

  --keystore F            the keystore of an enrolled device
  --gateway URL           another gateway than the one the device enrolled with`,
  },
} as const;
type Command = keyof typeof commands;

const usage = `usage:
${Object.values(commands)
  .map((c) => `  ${c.synopsis}`)
  .join('\n')}

keyfleet-agent <command> --help describes a command. Prints one JSON object on success; exit
status 1 on failure, 2 on a usage error. KEYFLEET_CA_FILE names the operator's CA certificate (the
gateway's HTTPS certificate must chain to it).`;

const options = {
  token: { type: 'string' },
  gateway: { type: 'string' },
  id: { type: 'string' },
  keystore: { type: 'string' },
  key: { type: 'string' },
  'metadata-key': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const isCommand = (name: string | undefined): name is Command => name !== undefined && Object.hasOwn(commands, name);

/** A usage error in one of the commands. */
class CommandUsageError extends UsageError {
  constructor(
    message: string,
    readonly command: Command,
  ) {
    super(message);
  }
}

/** Where the command line writes: `process`, or a test's buffers. */
export interface CliIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

function strictParse(argv: readonly string[], command: Command) {
  try {
    return parseArgs({ args: [...argv], allowPositionals: true, options });
  } catch (err) {
    throw new CommandUsageError(parseArgsProblem(err), command);
  }
}

/** Runs one command line; answers the exit status. */
export async function run(argv: readonly string[], env: NodeJS.ProcessEnv, io: CliIo = process): Promise<number> {
  try {
    const result = await main(argv, env, io);
    if (result !== undefined) io.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      const help = err instanceof CommandUsageError ? `keyfleet-agent ${err.command} --help` : 'keyfleet-agent --help';
      io.stderr.write(`${AgentErrorCode.InvalidArgument}: ${err.message} (${help} shows the usage)\n`);
      return 2;
    }
    if (isAgentError(err)) {
      io.stderr.write(`${err.code}${err.detail === undefined ? '' : ` (${err.detail})`}: ${err.message}\n`);
    } else {
      io.stderr.write(`AGENT_FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
    }
    return 1;
  }
}

/** The command's result to print, or undefined when help was printed. */
async function main(argv: readonly string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<unknown> {
  // A lenient pass first, so that `--help` answers even next to an unknown or incomplete option.
  const lenient = parseArgs({ args: [...argv], allowPositionals: true, strict: false, options });
  const named = lenient.positionals[0];
  const command = isCommand(named) ? named : undefined;
  if (lenient.values.help === true) {
    io.stdout.write(
      command === undefined ? `${usage}\n` : `usage: ${commands[command].synopsis}\n\n${commands[command].help}\n`,
    );
    return undefined;
  }
  if (named === undefined) throw new UsageError(`a command is required: ${Object.keys(commands).join(', ')}`);
  if (command === undefined) {
    throw new UsageError(`unknown command '${named}': the commands are ${Object.keys(commands).join(', ')}`);
  }

  const { positionals, values } = strictParse(argv, command);
  const extra = positionals[1];
  if (extra !== undefined) throw new CommandUsageError(`unexpected argument '${extra}'`, command);
  const given = (value: string | undefined) => (value === '' ? undefined : value);
  const missing = (names: readonly [string, string | undefined][]) => {
    const absent = names.filter(([, value]) => given(value) === undefined).map(([name]) => name);
    if (absent.length > 0) {
      throw new CommandUsageError(`${absent.join(', ')} ${absent.length === 1 ? 'is' : 'are'} required`, command);
    }
  };

  const token = given(values.token) ?? given(env.KEYFLEET_ENROLMENT_TOKEN);
  if (command === 'enrol') {
    missing([
      ['--token (or KEYFLEET_ENROLMENT_TOKEN)', token],
      ['--gateway', values.gateway],
      ['--id', values.id],
      ['--keystore', values.keystore],
    ]);
  } else {
    missing([
      ...(command === 'rotate' ? [['--key', values.key] as [string, string | undefined]] : []),
      ['--keystore', values.keystore],
    ]);
  }
  const keystorePath = values.keystore ?? '';
  const metadataKey = values['metadata-key'];
  let metadataSigningPublicKey: string | undefined;
  if (metadataKey !== undefined) {
    try {
      metadataSigningPublicKey = readFileSync(metadataKey, 'utf8');
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      const why = typeof code === 'string' ? code : err instanceof Error ? err.message : String(err);
      throw new CommandUsageError(`--metadata-key ${metadataKey} cannot be read (${why})`, command);
    }
  }
  let tls: TlsTrust;
  try {
    tls = tlsTrustFromEnv(env);
  } catch (err) {
    throw new CommandUsageError((err as Error).message, command);
  }
  const agent = newAgent({
    keystorePath,
    tls,
    ...(values.gateway === undefined ? {} : { gatewayUrl: values.gateway }),
    ...(values.id === undefined ? {} : { deviceId: values.id }),
    ...(metadataSigningPublicKey === undefined ? {} : { metadataSigningPublicKey }),
  });
  switch (command) {
    case 'enrol':
      return agent.enrol(token ?? '');
    case 'rotate':
      return agent.rotate(values.key ?? '');
    case 'check-in':
      return agent.checkIn();
  }
}

if (require.main === module) {
  void run(process.argv.slice(2), process.env).then((code) => {
    process.exitCode = code;
  });
}
