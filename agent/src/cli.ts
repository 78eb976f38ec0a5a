#!/usr/bin/env node
/**
 * keyfleet-agent: the device agent from a shell.
 *
 *   keyfleet-agent enrol --token T --gateway URL --id D --keystore F [--metadata-key PEMFILE]
 *   keyfleet-agent rotate --key K --keystore F [--gateway URL]
 *   keyfleet-agent check-in --keystore F [--gateway URL]
 *
 * Prints one JSON object on success; on failure, the error code and message on stderr, exit 1.
 * The enrolment token may also come from KEYFLEET_ENROLMENT_TOKEN (it is a credential: argv is
 * visible to other users of the machine).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { newAgent } from './agent.js';
import { AgentError, AgentErrorCode, isAgentError } from './errors.js';

const usage = `usage:
  keyfleet-agent enrol --token T --gateway URL --id D --keystore F [--metadata-key PEMFILE]
  keyfleet-agent rotate --key K --keystore F [--gateway URL]
  keyfleet-agent check-in --keystore F [--gateway URL]`;

export async function main(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<unknown> {
  const { positionals, values } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      token: { type: 'string' },
      gateway: { type: 'string' },
      id: { type: 'string' },
      keystore: { type: 'string' },
      key: { type: 'string' },
      'metadata-key': { type: 'string' },
    },
  });
  const [command] = positionals;
  const keystorePath = values.keystore;
  if (keystorePath === undefined || positionals.length !== 1) {
    throw new AgentError(AgentErrorCode.InvalidArgument, usage);
  }
  const metadataKey = values['metadata-key'];
  const agent = newAgent({
    keystorePath,
    ...(values.gateway === undefined ? {} : { gatewayUrl: values.gateway }),
    ...(values.id === undefined ? {} : { deviceId: values.id }),
    ...(metadataKey === undefined ? {} : { metadataSigningPublicKey: readFileSync(metadataKey, 'utf8') }),
  });
  switch (command) {
    case 'enrol': {
      const token = values.token ?? env.KEYFLEET_ENROLMENT_TOKEN;
      if (token === undefined) throw new AgentError(AgentErrorCode.InvalidArgument, usage);
      return agent.enrol(token);
    }
    case 'rotate':
      if (values.key === undefined) throw new AgentError(AgentErrorCode.InvalidArgument, usage);
      return agent.rotate(values.key);
    case 'check-in':
      return agent.checkIn();
    default:
      throw new AgentError(AgentErrorCode.InvalidArgument, usage);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`);
    },
    (err: unknown) => {
      if (isAgentError(err)) {
        process.stderr.write(`${err.code}${err.detail === undefined ? '' : ` (${err.detail})`}: ${err.message}\n`);
      } else {
        process.stderr.write(`AGENT_FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
      }
      process.exitCode = 1;
    },
  );
}
