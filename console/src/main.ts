#!/usr/bin/env node
import { runService } from '@keyfleet/gateway';
import { loadConsoleConfig } from './config';
import { openConsole } from './console';

/** The auditor's console process: configuration from the environment, signals, orderly shutdown. */
runService('console', async () => {
  const config = loadConsoleConfig(process.env);
  const service = await openConsole(config);
  const { connectionProfile: fabric, org, identity } = config.ledger;
  const { host, port, tls } = config.http;
  return { service, host, port, ready: { fabric, org, identity, https: tls !== undefined } };
});
