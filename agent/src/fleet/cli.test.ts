import { expect } from 'chai';

import { run } from './cli.js';

describe('fleet simulator command line: whole-number options', () => {
  const cases: [string[], string][] = [
    [['--devices', '-5'], '--devices must be a whole number from 1 to 10000'],
    [['--devices=-5'], '--devices must be a whole number from 1 to 10000'],
    [['--devices', '0'], '--devices must be a whole number from 1 to 10000'],
    [['--devices', '10001'], '--devices must be a whole number from 1 to 10000'],
    [['--devices', '1e3'], '--devices must be a whole number from 1 to 10000'],
    [['--devices', '0x10'], '--devices must be a whole number from 1 to 10000'],
    [['--devices', '10', '--tampered', '11'], '--tampered must be a whole number from 0 to 10'],
    [['--tampered', '-1'], '--tampered must be a whole number from 0 to 50'],
    [['--rounds', '-1'], '--rounds must be a whole number from 0 to 1000'],
    [['--interval', '1.5'], '--interval must be a whole number from 0 to 86400'],
    [['--concurrency', '0'], '--concurrency must be a whole number from 1 to 4096'],
    [['--groups', '0'], '--groups must be a whole number from 1 to 64'],
    [['--groups', '65'], '--groups must be a whole number from 1 to 64'],
    [['--groups', '-2'], '--groups must be a whole number from 1 to 64'],
    [['--groups', 'four'], '--groups must be a whole number from 1 to 64'],
    [['--rounds'], '--rounds needs a value'],
    [['--group', '-x'], "--group needs a value (one that starts with '-' is written --group=VALUE)"],
    [['--bogus'], 'unknown option --bogus'],
  ];
  for (const [argv, message] of cases) {
    it(`refuses ${argv.join(' ')} in one line, exit 2`, async () => {
      let stdout = '';
      let stderr = '';
      const code = await run(
        argv,
        {},
        {
          stdout: { write: (text: string) => (stdout += text) },
          stderr: { write: (text: string) => (stderr += text) },
        },
      );
      expect({ code, stdout, stderr }).to.deep.equal({
        code: 2,
        stdout: '',
        stderr: `keyfleet-fleet: AGENT_INVALID_ARGUMENT: ${message} (keyfleet-fleet --help shows the usage)\n`,
      });
    });
  }
});
