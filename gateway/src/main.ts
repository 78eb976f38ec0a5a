#!/usr/bin/env node
import { openGateway } from './app';
import { loadConfig } from './config';
import { runService } from './service-process';

/** The gateway process: configuration from the environment, signals, orderly shutdown. */
runService('gateway', async () => {
  const config = loadConfig(process.env);
  const gateway = await openGateway(config);
  return {
    service: gateway,
    ...config.http,
    ready: { fabric: config.ledger.connectionProfile, anchors: gateway.anchors },
  };
});
