/**
 * What the agent's two command lines (`keyfleet-agent`, the fleet simulator) share: one-line usage
 * errors that name the option, in place of the text of Node's parseArgs.
 */

/** A problem with the command line: one line naming it, exit status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** One line naming the option for a parseArgs error (whose own text explains parseArgs). */
export function parseArgsProblem(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  // "Option '-h, --help' …": the long name.
  const option = /'(?:-\w, )?(--?[A-Za-z][\w-]*)/.exec(message)?.[1];
  if (option === undefined) return message;
  switch ((err as { code?: unknown }).code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${option}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/does not take an argument/.test(message)) return `${option} takes no value`;
      if (/ambiguous/.test(message))
        return `${option} needs a value (one that starts with '-' is written ${option}=VALUE)`;
      return `${option} needs a value`;
    default:
      return message;
  }
}

/**
 * `--devices -5` as `--devices=-5` for the whole-number options: parseArgs takes a value that starts
 * with '-' only in that form, so that the range check, not parseArgs, answers it.
 */
export function joinNegativeNumbers(argv: readonly string[], numeric: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const next = argv[i + 1];
    if (arg === '--') return out.concat(argv.slice(i));
    if (numeric.has(arg) && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** A whole number from `min` to `max` given as `--option`, or a usage error that says so. */
export function wholeNumber(option: string, value: string, min: number, max: number): number {
  const n = /^\d{1,16}$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${option} must be a whole number from ${min} to ${max}`);
  }
  return n;
}
