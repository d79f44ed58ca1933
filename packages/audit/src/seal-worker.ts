/**
 * Optional off-thread sealing (`AuditLoggerOptions.sealer: 'worker'`): the hash chain and HMAC are
 * computed on a worker thread, so a second core does the crypto while the main thread validates,
 * canonicalizes and writes. The worker produces exactly what {@link RecordSealer} produces: it checks
 * itself at start against a record sealed on the main thread by `sealRecord`, and the logger's tests
 * run against both sealers.
 *
 * Protocol (one request in flight at a time; the chain state lives in the worker):
 *   → { seqs: Float64Array, ids: string ('\n'-joined), times: string ('\n'-joined),
 *       ends: Uint32Array (end offset of each event's JSON in `events`), events: ArrayBuffer }
 *   ← { out: ArrayBuffer (lines, each + '\n'), ends: Uint32Array, hashes: string (64 hex each) }
 * Buffers are transferred, not copied.
 */
import { Worker } from 'node:worker_threads';
import type { PendingRecord } from './queue.js';
import { GENESIS_HASH, HASH_DOMAIN, MAC_DOMAIN, sealRecord } from './record.js';

// The worker's code: plain JavaScript (no imports from this package), run with `eval: true`.
const WORKER_SOURCE = String.raw`
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const crypto = require('node:crypto');
const hashHex = typeof crypto.hash === 'function'
  ? (d) => crypto.hash('sha256', d, 'hex')
  : (d) => crypto.createHash('sha256').update(d).digest('hex');
const hashLatin1 = typeof crypto.hash === 'function'
  ? (d) => crypto.hash('sha256', d, 'latin1')
  : (d) => crypto.createHash('sha256').update(d).digest('binary');
const { serviceId, key, hashDomain, macDomain, probe } = workerData;
let prev = workerData.prev;
const sid = JSON.stringify(serviceId);
let inner = null, outer = null, at = 0;
if (key) {
  let k = Buffer.from(key);
  if (k.length > 64) k = crypto.createHash('sha256').update(k).digest();
  const dom = Buffer.from(macDomain, 'latin1');
  inner = Buffer.alloc(64 + dom.length + 64, 0x36);
  outer = Buffer.alloc(96, 0x5c);
  for (let i = 0; i < k.length; i++) { inner[i] = 0x36 ^ k[i]; outer[i] = 0x5c ^ k[i]; }
  k.fill(0);
  dom.copy(inner, 64);
  at = 64 + dom.length;
}
function seal(seq, id, time, ev, prevHash) {
  const body = '{"audit_id":' + JSON.stringify(id) + ',"event":' + ev + ',"prev_hash":' + JSON.stringify(prevHash) +
    ',"seq":' + seq + ',"service_id":' + sid + ',"time":' + JSON.stringify(time) + ',"v":1}';
  const h = hashHex(hashDomain + body);
  const i = body.lastIndexOf(',"prev_hash":"') + 1;
  let mac = '';
  if (inner) {
    inner.write(h, at, 64, 'latin1');
    outer.write(hashLatin1(inner), 64, 32, 'latin1');
    mac = '"mac":"' + hashHex(outer) + '",';
  }
  return [body.slice(0, i) + '"hash":"' + h + '",' + mac + body.slice(i), h];
}
const p = seal(probe.seq, probe.id, probe.time, probe.event, probe.prev);
if (p[0] !== probe.line) throw new Error('seal worker self-test failed');
parentPort.on('message', (m) => {
  const ev = Buffer.from(m.events);
  const n = m.seqs.length;
  const ids = m.ids.split('\n');
  const times = m.times.split('\n');
  let out = Buffer.allocUnsafe(Math.max(1024, ev.length * 2 + n * 400));
  let off = 0, start = 0;
  const ends = new Uint32Array(n);
  let hashes = '';
  for (let j = 0; j < n; j++) {
    const r = seal(m.seqs[j], ids[j], times[j],
      ev.toString('utf8', start, m.ends[j]), prev);
    start = m.ends[j];
    prev = r[1];
    hashes += r[1];
    const need = r[0].length * 3 + 1;
    if (off + need > out.length) { const b = Buffer.allocUnsafe(Math.max(out.length * 2, off + need)); out.copy(b, 0, 0, off); out = b; }
    off += out.write(r[0], off);
    out[off++] = 10;
    ends[j] = off;
  }
  const ab = out.buffer.slice(out.byteOffset, out.byteOffset + off);
  parentPort.postMessage({ out: ab, ends, hashes }, [ab, ends.buffer]);
});
`;

/** Seals batches on a worker thread, in order. Not re-entrant: one `seal` at a time. */
export class WorkerSealer {
  readonly #worker: Worker;
  #pending: { resolve: (m: Reply) => void; reject: (e: unknown) => void } | null = null;
  #failed: unknown = null;
  #hash: string;

  constructor(serviceId: string, macKey: Uint8Array | undefined, prevHash: string) {
    this.#hash = prevHash;
    const probeEvent = '{"type":"probe","x":"é\\u0001"}';
    const probe = {
      seq: 7,
      id: '00000000-0000-4000-8000-000000000007',
      time: '2026-01-01T00:00:00.000Z',
      event: probeEvent,
      prev: GENESIS_HASH,
      line: sealRecord(
        {
          seq: 7,
          audit_id: '00000000-0000-4000-8000-000000000007',
          time: '2026-01-01T00:00:00.000Z',
          service_id: serviceId,
          eventJson: probeEvent,
          prev_hash: GENESIS_HASH,
        },
        macKey,
      ).line,
    };
    this.#worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        serviceId,
        key: macKey ? Buffer.from(macKey) : null,
        hashDomain: HASH_DOMAIN,
        macDomain: MAC_DOMAIN,
        prev: prevHash,
        probe,
      },
      execArgv: [],
      env: {},
      stdout: false,
      stderr: false,
    });
    this.#worker.on('message', (m: Reply) => {
      const p = this.#pending;
      this.#pending = null;
      p?.resolve(m);
    });
    this.#worker.on('error', (e) => this.#fail(e));
    this.#worker.on('exit', (code) => this.#fail(new Error(`seal worker exited (${code})`)));
    // After the listeners: adding a 'message' listener refs the worker again.
    this.#worker.unref();
  }

  #fail(e: unknown): void {
    this.#failed ??= e;
    const p = this.#pending;
    this.#pending = null;
    p?.reject(e);
  }

  /** Hash of the last record this sealer sealed (the chain head). */
  get hash(): string {
    return this.#hash;
  }

  /** True once the worker failed (the caller then seals on the main thread from {@link hash}). */
  get failed(): boolean {
    return this.#failed !== null;
  }

  /**
   * Seals `recs` (unsealed, consecutive, in seq order) on the worker and stores each record's line
   * bytes and hash. Rejects if the worker fails; then nothing of `recs` has been sealed.
   */
  async seal(recs: PendingRecord[]): Promise<void> {
    if (this.#failed) throw this.#failed;
    const n = recs.length;
    let total = 0;
    for (let i = 0; i < n; i++) total += (recs[i] as PendingRecord).eventBytes;
    const events = Buffer.allocUnsafeSlow(total);
    const seqs = new Float64Array(n);
    const ends = new Uint32Array(n);
    let ids = '';
    let times = '';
    let off = 0;
    for (let i = 0; i < n; i++) {
      const r = recs[i] as PendingRecord;
      r.copyEventTo(events, off);
      off += r.eventBytes;
      ends[i] = off;
      seqs[i] = r.seq;
      ids += i === 0 ? r.auditId : `\n${r.auditId}`;
      times += i === 0 ? r.time : `\n${r.time}`;
    }
    this.#worker.ref(); // keep the process alive while a batch is being sealed
    let reply: Reply;
    try {
      reply = await new Promise<Reply>((resolve, reject) => {
        this.#pending = { resolve, reject };
        this.#worker.postMessage({ seqs, ids, times, ends, events: events.buffer }, [events.buffer]);
      });
    } finally {
      this.#worker.unref();
    }
    const out = Buffer.from(reply.out);
    let start = 0;
    for (let i = 0; i < n; i++) {
      const r = recs[i] as PendingRecord;
      const end = reply.ends[i] as number;
      r.buf = out;
      r.off = start;
      r.len = end - start;
      r.hash = reply.hashes.slice(i * 64, i * 64 + 64);
      r.releaseEvent();
      start = end;
    }
    if (n > 0) this.#hash = (recs[n - 1] as PendingRecord).hash;
  }

  async close(): Promise<void> {
    this.#failed ??= new Error('seal worker closed');
    await this.#worker.terminate();
  }
}

interface Reply {
  out: ArrayBuffer;
  ends: Uint32Array;
  hashes: string;
}
