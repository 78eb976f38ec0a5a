/**
 * C_FindObjects on a worker thread. pkcs11js has no asynchronous form of it, and SoftHSM's file
 * object store reads every object on the token for each search (one file open, lock and read per
 * object): with thousands of keys a search takes tens of milliseconds, which on the main thread
 * would stall every request. The worker loads the same library, which the main thread has
 * already initialised (CKR_CRYPTOKI_ALREADY_INITIALIZED is expected), and searches in a session
 * the main thread opened: PKCS#11 session handles belong to the process, not to a thread
 * (v2.40 §5.6), and the library locks itself (CKF_OS_LOCKING_OK).
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Handle, Template } from 'pkcs11js';

/** One search; the session must not be used by anyone else until it answers. */
export interface FindRequest {
  readonly id: number;
  readonly session: Uint8Array;
  readonly template: Template;
  readonly max: number;
}

export type FindReply =
  { readonly id: number; readonly handles: Uint8Array[] } | { readonly id: number; readonly error: string };

/** Searches on one worker thread of its own, in arrival order. */
export class FindWorker {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (handles: Handle[]) => void; reject: (err: Error) => void }>();
  #nextId = 1;
  #failed: Error | undefined;

  constructor(modulePath: string) {
    this.#worker = new Worker(join(__dirname, 'find-worker-thread.js'), { workerData: { modulePath } });
    // The process may exit while the worker waits for work; it holds nothing that needs closing.
    this.#worker.unref();
    this.#worker.on('message', (reply: FindReply) => {
      const waiter = this.#pending.get(reply.id);
      if (waiter === undefined) return;
      this.#pending.delete(reply.id);
      if ('error' in reply) waiter.reject(new Error(reply.error));
      else waiter.resolve(reply.handles.map((h) => Buffer.from(h.buffer, h.byteOffset, h.byteLength)));
    });
    const fail = (err: Error): void => {
      this.#failed = err;
      for (const waiter of this.#pending.values()) waiter.reject(err);
      this.#pending.clear();
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => {
      fail(new Error(`the PKCS#11 search thread exited (${code})`));
    });
  }

  /** The handles of up to `max` objects matching `template`, found in `session`. */
  find(session: Handle, template: Template, max: number): Promise<Handle[]> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    const id = this.#nextId++;
    // The worker waits on its port only while searches are pending.
    if (this.#pending.size === 0) this.#worker.ref();
    return new Promise<Handle[]>((resolve, reject) => {
      this.#pending.set(id, {
        resolve: (handles) => {
          this.#settled();
          resolve(handles);
        },
        reject: (err) => {
          this.#settled();
          reject(err);
        },
      });
      const request: FindRequest = { id, session: new Uint8Array(session), template, max };
      this.#worker.postMessage(request);
    });
  }

  /** Stops the thread; searches still pending fail. Called when the library is finalised. */
  close(): void {
    void this.#worker.terminate();
  }

  #settled(): void {
    if (this.#pending.size === 0) this.#worker.unref();
  }
}
