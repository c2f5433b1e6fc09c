// The bullmq driver (docs/drivers.md): the protocol on stdin/stdout, jobs added in bulk
// (`addBulk`, one call per batch) with `removeOnComplete`, as conveyor deletes finished jobs; one
// worker process per core (worker.mjs), each a BullMQ Worker with concurrency 50. Workers append
// one record line per job to a file (O_APPEND); this process tails it and sends the records.
import { Queue } from 'bullmq';
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { connectionOf, nowNs } from './common.mjs';

const CONCURRENCY = 50;
const send = (message) => process.stdout.write(JSON.stringify(message) + '\n');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-bullmq-'));
const recordsPath = path.join(dir, 'records');
fs.writeFileSync(recordsPath, '');

let queue;
let cores = 1;
let workers = [];
let offset = 0;
let partial = '';
let sent = 0;
let tail;

function flushRecords() {
  const fd = fs.openSync(recordsPath, 'r');
  const size = fs.fstatSync(fd).size;
  const buf = Buffer.alloc(size - offset);
  fs.readSync(fd, buf, 0, buf.length, offset);
  fs.closeSync(fd);
  offset = size;
  const lines = (partial + buf.toString()).split('\n');
  partial = lines.pop();
  const records = lines.map((l) => {
    const [seq, enqueued_ns, started_ns, finished_ns, pid] = l.split(' ');
    return { seq: Number(seq), enqueued_ns: Number(enqueued_ns), started_ns: Number(started_ns), finished_ns: Number(finished_ns), pid: Number(pid) };
  });
  if (records.length > 0) {
    send({ type: 'records', records });
    sent += records.length;
  }
}

async function handle(msg) {
  switch (msg.type) {
    case 'hello': {
      cores = msg.cores;
      process.env.CONVEYOR_REDIS_URL = msg.redis_url;
      process.env.CONVEYOR_QUEUE = msg.queue;
      process.env.CONVEYOR_RECORDS = recordsPath;
      queue = new Queue(msg.queue, { connection: connectionOf(msg.redis_url) });
      await queue.waitUntilReady();
      const version = createRequire(import.meta.url)('bullmq/package.json').version;
      const ioredis = createRequire(import.meta.url)('ioredis/package.json').version;
      const settings = { processes: cores, concurrency: CONCURRENCY, remove_on_complete: true, add: 'addBulk' };
      return send({ type: 'hello', driver: 'bullmq', library: `bullmq ${version} (ioredis ${ioredis}, node ${process.version})`, settings });
    }
    case 'enqueue': {
      const enqueued = nowNs();
      await queue.addBulk(msg.jobs.map((j) => ({
        name: j.kind,
        data: { seq: j.seq, enqueued_ns: enqueued, kind: j.kind, duration_us: j.duration_us, payload: 'x'.repeat(j.payload_bytes) },
        opts: { removeOnComplete: true, removeOnFail: true },
      })));
      return send({ type: 'enqueued', batch: msg.batch });
    }
    case 'start': {
      workers = Array.from({ length: cores }, () => fork(new URL('./worker.mjs', import.meta.url), [String(CONCURRENCY)]));
      await Promise.all(workers.map((w) => new Promise((resolve) => w.once('message', resolve))));
      tail = setInterval(flushRecords, 50);
      return send({ type: 'started', pids: workers.map((w) => w.pid) });
    }
    case 'stop':
      return stop();
  }
}

async function stop() {
  await Promise.all(workers.map((w) => new Promise((resolve) => { w.once('exit', resolve); w.kill('SIGTERM'); })));
  clearInterval(tail);
  flushRecords();
  let remaining = null;
  if (queue) {
    const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'paused', 'prioritized', 'waiting-children');
    remaining = Object.values(counts).reduce((a, b) => a + b, 0);
    await queue.close();
  }
  send({ type: 'stopped', records_sent: sent, remaining });
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}

// Requests are handled one at a time, in order, so acknowledgements keep the batches' order.
let chain = Promise.resolve();
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  chain = chain.then(() => handle(JSON.parse(line))).catch((e) => {
    send({ type: 'error', message: String(e && e.stack || e) });
    process.exit(1);
  });
}).on('close', () => { chain = chain.then(stop); });
