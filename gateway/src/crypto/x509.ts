// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata
// polyfill loaded before it: import the library through this module only.
import 'reflect-metadata';

export * from '@peculiar/x509';
