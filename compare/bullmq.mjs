// BullMQ's side of compare/run: the same work as conveyor's noop-10w scenario. One process adds
// JOBS no-op jobs (100-byte payload) in bulk batches of 500 while one worker with CONCURRENCY
// slots (10, as conveyor's 10 workers) runs them; completed jobs are removed, as conveyor deletes
// them. Prints one JSON line: jobs/s from the first add to the last completion.
import { Queue, Worker } from 'bullmq';
import { createRequire } from 'node:module';

const port = Number(process.env.REDIS_PORT || 6379);
const jobs = Number(process.env.JOBS || 50000);
const concurrency = Number(process.env.CONCURRENCY || 10);
const connection = { host: '127.0.0.1', port };
const name = `compare-${process.pid}`;
const payload = 'x'.repeat(100);

const queue = new Queue(name, { connection });
let completed = 0;
let allDone;
const finished = new Promise((resolve) => (allDone = resolve));
const worker = new Worker(name, async () => {}, { connection, concurrency });
worker.on('completed', () => {
  if (++completed === jobs) allDone();
});
await worker.waitUntilReady();

const start = process.hrtime.bigint();
const seconds = () => Number(process.hrtime.bigint() - start) / 1e9;
for (let sent = 0; sent < jobs; sent += 500) {
  const batch = Array.from({ length: Math.min(500, jobs - sent) }, (_, i) => ({
    name: 'noop',
    data: { seq: sent + i, payload },
    opts: { removeOnComplete: true },
  }));
  await queue.addBulk(batch);
}
const enqueueSeconds = seconds();
await finished;
const total = seconds();

const version = createRequire(import.meta.url)('bullmq/package.json').version;
console.log(JSON.stringify({ queue: `bullmq ${version}`, jobs, concurrency, enqueue_seconds: enqueueSeconds, jobs_per_second: jobs / total }));
await worker.close();
await queue.obliterate({ force: true });
await queue.close();
