/**
 * Crash points for recovery tests: when KEYFLEET_FAILPOINT names this point, the process dies
 * here at once (SIGKILL: no handler, no cleanup), exactly as a power cut would leave it. Unset
 * in production, where this is one string comparison.
 */
export function failpoint(name: string): void {
  if (process.env.KEYFLEET_FAILPOINT === name) process.kill(process.pid, 'SIGKILL');
}
