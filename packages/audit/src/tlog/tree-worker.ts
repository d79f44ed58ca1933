/**
 * Worker-thread entry of {@link WorkerTreeHost}: runs a {@link LocalTreeHost} and answers the main
 * thread's messages strictly in order (appends, syncs and the final close never overtake each other).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { LocalTreeHost } from './tree-host.js';
import {
  FINISH_ERROR,
  FINISH_OK,
  type HostRequest,
  type HostResponse,
  writeFinish,
} from './worker-protocol.js';

const port = parentPort;
if (!port) throw new Error('tree-worker must run in a worker thread');
const host = new LocalTreeHost((workerData as { dir: string }).dir);
let chain: Promise<void> = Promise.resolve();

const reply = (m: HostResponse) => port.postMessage(m);
const errorOf = (err: unknown) => ({
  code: (err as { code?: string }).code ?? 'TLOG_IO',
  message: err instanceof Error ? err.message : String(err),
});

async function handle(m: HostRequest): Promise<void> {
  switch (m.t) {
    case 'append':
      host.append(m.seq, m.hex);
      return;
    case 'start':
      try {
        reply({ t: 'ok', id: m.id, ...(await host.start()) });
      } catch (err) {
        reply({ t: 'err', id: m.id, ...errorOf(err) });
      }
      return;
    case 'sync':
      try {
        const head = await host.sync();
        reply({ t: 'ok', id: m.id, size: head.size, root: head.root.toString('hex') });
      } catch (err) {
        reply({ t: 'err', id: m.id, ...errorOf(err) });
      }
      return;
    case 'finish':
      try {
        const head = await host.finish();
        writeFinish(m.sab, FINISH_OK, head.size, head.root, '');
      } catch (err) {
        writeFinish(m.sab, FINISH_ERROR, 0, Buffer.alloc(32), errorOf(err).message);
      }
      return;
    case 'close':
      try {
        await host.close();
        reply({ t: 'ok', id: m.id });
      } catch (err) {
        reply({ t: 'err', id: m.id, ...errorOf(err) });
      }
      return;
  }
}

port.on('message', (m: HostRequest) => {
  chain = chain.then(() =>
    handle(m).catch((err) => {
      reply({ t: 'err', id: -1, ...errorOf(err) });
    }),
  );
});
