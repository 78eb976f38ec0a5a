/**
 * @keyfleet/console: the auditor's console, a read-only web page over the ledger read as Org2's
 * auditor, whose browser side verifies every record's JWS against the anchors the auditor pinned.
 */
export { loadConsoleConfig, type ConsoleConfig } from './config';
export { openConsole, type AuditorConsole } from './console';
export {
  newFabricAuditorLedger,
  type AuditorLedger,
  type FabricAuditorLedgerOptions,
  type TransactionLocation,
} from './auditor-ledger';
export { buildConsoleServer, type ConsoleServerOptions } from './server';
