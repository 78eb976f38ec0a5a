import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import { run } from './cli.js';

async function agentCli(argv: string[], env: NodeJS.ProcessEnv = {}) {
  let stdout = '';
  let stderr = '';
  const code = await run(argv, env, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
  });
  return { code, stdout, stderr };
}

describe('keyfleet-agent command line', () => {
  let dir: string;
  let keystore: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'keyfleet-agent-cli-'));
    keystore = join(dir, 'keystore.json');
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  describe('--help prints the usage on stdout and exits 0', () => {
    it('for the whole command line', async () => {
      for (const argv of [['--help'], ['-h']]) {
        const result = await agentCli(argv);
        expect(result.code).to.equal(0);
        expect(result.stderr).to.equal('');
        for (const command of ['enrol', 'rotate', 'check-in']) {
          expect(result.stdout).to.include(`\n  keyfleet-agent ${command} --`);
        }
      }
    });

    for (const [command, options] of [
      ['enrol', ['--token', '--gateway', '--id', '--keystore', '--metadata-key']],
      ['rotate', ['--key', '--keystore', '--gateway']],
      ['check-in', ['--keystore', '--gateway']],
    ] as const) {
      it(`for ${command}, describing its options, even beside a bad one`, async () => {
        for (const argv of [
          [command, '--help'],
          [command, '-h'],
          ['--help', command],
          [command, '--keystore', keystore, '--bogus', '--help'],
        ]) {
          const result = await agentCli(argv);
          expect(result.code, argv.join(' ')).to.equal(0);
          expect(result.stderr).to.equal('');
          expect(result.stdout.startsWith(`usage: keyfleet-agent ${command} `), result.stdout).to.equal(true);
          for (const option of options) expect(result.stdout).to.match(new RegExp(`\\n  ${option} `));
        }
      });
    }

    it('from the ./keyfleet-agent script at the repository root', () => {
      const script = join(__dirname, '..', '..', 'keyfleet-agent');
      for (const argv of [['--help'], ['enrol', '--help'], ['rotate', '--help'], ['check-in', '--help']]) {
        const result = spawnSync(script, argv, { encoding: 'utf8' });
        expect([result.status, result.stderr], argv.join(' ')).to.deep.equal([0, '']);
        expect(result.stdout).to.match(/^usage:/);
      }
    });
  });

  describe('a usage error names the problem in one line and exits 2', () => {
    const cases: [string[], string][] = [
      [[], 'a command is required: enrol, rotate, check-in (keyfleet-agent --help shows the usage)'],
      [
        ['enroll'],
        "unknown command 'enroll': the commands are enrol, rotate, check-in (keyfleet-agent --help shows the usage)",
      ],
      [
        ['enrol', '--gateway', 'http://127.0.0.1:1', '--id', 'd-1', '--keystore', 'K'],
        '--token (or KEYFLEET_ENROLMENT_TOKEN) is required (keyfleet-agent enrol --help shows the usage)',
      ],
      [
        ['enrol', '--token', '', '--keystore', 'K'],
        '--token (or KEYFLEET_ENROLMENT_TOKEN), --gateway, --id are required (keyfleet-agent enrol --help shows the usage)',
      ],
      [
        ['enrol'],
        '--token (or KEYFLEET_ENROLMENT_TOKEN), --gateway, --id, --keystore are required (keyfleet-agent enrol --help shows the usage)',
      ],
      [['rotate', '--keystore', 'K'], '--key is required (keyfleet-agent rotate --help shows the usage)'],
      [['rotate', '--key', 'k-1'], '--keystore is required (keyfleet-agent rotate --help shows the usage)'],
      [['check-in'], '--keystore is required (keyfleet-agent check-in --help shows the usage)'],
      [['check-in', '--keystore'], '--keystore needs a value (keyfleet-agent check-in --help shows the usage)'],
      [
        ['check-in', '--keystore', '-k'],
        "--keystore needs a value (one that starts with '-' is written --keystore=VALUE) (keyfleet-agent check-in --help shows the usage)",
      ],
      [
        ['check-in', '--keystore', 'K', '--verbose'],
        'unknown option --verbose (keyfleet-agent check-in --help shows the usage)',
      ],
      [
        ['check-in', '--keystore', 'K', 'now'],
        "unexpected argument 'now' (keyfleet-agent check-in --help shows the usage)",
      ],
      [
        ['check-in', '--keystore', 'K', '--help=yes'],
        '--help takes no value (keyfleet-agent check-in --help shows the usage)',
      ],
    ];
    for (const [argv, message] of cases) {
      it(`keyfleet-agent ${argv.join(' ')}`, async () => {
        expect(await agentCli(argv)).to.deep.equal({
          code: 2,
          stdout: '',
          stderr: `AGENT_INVALID_ARGUMENT: ${message}\n`,
        });
      });
    }

    it('names a --metadata-key file that cannot be read', async () => {
      const pem = join(dir, 'metadata.pem');
      const argv = ['enrol', '--token', 'T', '--gateway', 'http://127.0.0.1:1', '--id', 'd-1', '--keystore', keystore];
      expect(await agentCli([...argv, '--metadata-key', pem])).to.deep.equal({
        code: 2,
        stdout: '',
        stderr: `AGENT_INVALID_ARGUMENT: --metadata-key ${pem} cannot be read (ENOENT) (keyfleet-agent enrol --help shows the usage)\n`,
      });
    });
  });

  it('takes the enrolment token from KEYFLEET_ENROLMENT_TOKEN, and hands a complete command to the agent', async () => {
    // Nothing answers on port 1: the agent ran, and failed on the network, not on the command line.
    const enrol = ['enrol', '--gateway', 'http://127.0.0.1:1', '--id', 'd-1', '--keystore', keystore];
    const result = await agentCli(enrol, { KEYFLEET_ENROLMENT_TOKEN: 'T' });
    expect([result.code, result.stdout]).to.deep.equal([1, '']);
    expect(result.stderr).to.match(/^AGENT_GATEWAY_UNAVAILABLE: /);
    // A device that never enrolled has nothing to check in.
    expect(await agentCli(['check-in', '--keystore', keystore])).to.deep.include({ code: 1, stdout: '' });
    expect((await agentCli(['check-in', '--keystore', keystore])).stderr).to.match(/^AGENT_NOT_ENROLLED: /);
  });
});
