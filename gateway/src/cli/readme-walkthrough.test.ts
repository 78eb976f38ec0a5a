import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

/** The shell lines of the README's walk-through (the block after "After `npm start`:"). */
function walkthrough(): string[] {
  const readme = readFileSync(join(__dirname, '..', '..', '..', 'README.md'), 'utf8');
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf('After `npm start`:')));
  if (block?.[1] === undefined) throw new Error('README.md has no walk-through after "After `npm start`:"');
  return block[1].split('\n');
}

describe("the README's walk-through", () => {
  it("makes the device's key and request outside the repository (no private key left in its root)", () => {
    // The lines that make files without a gateway: the device's directory and its openssl key and CSR.
    const local = walkthrough().filter((line) => /^(DEVICE=|openssl )/.test(line));
    expect(local.filter((line) => line.startsWith('openssl '))).to.have.length(2);
    const cwd = mkdtempSync(join(tmpdir(), 'keyfleet-readme-'));
    let device = '';
    try {
      device = execFileSync('bash', ['-euc', `${local.join('\n')}\nprintf %s "$DEVICE"`], { cwd, encoding: 'utf8' });
      expect(readdirSync(cwd), 'files written where the walk-through runs').to.deep.equal([]);
      expect(readdirSync(device).sort()).to.deep.equal(['sensor-1.csr', 'sensor-1.key']);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
      if (device !== '') rmSync(device, { recursive: true, force: true });
    }
  });
});
