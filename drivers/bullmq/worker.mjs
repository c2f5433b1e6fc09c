// One bullmq worker process of the bullmq driver: a BullMQ Worker with the concurrency given as
// its argument, running protocol jobs and appending one record line per job to CONVEYOR_RECORDS.
// SIGTERM closes the worker (active jobs finish) and exits.
import { Worker } from 'bullmq';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectionOf, nowNs } from './common.mjs';

const fd = fs.openSync(process.env.CONVEYOR_RECORDS, 'a');
const worker = new Worker(process.env.CONVEYOR_QUEUE, async (job) => {
  const { seq, enqueued_ns, kind, duration_us } = job.data;
  const started = nowNs();
  if (kind === 'sleep') {
    await sleep(duration_us / 1000);
  } else if (kind === 'cpu') {
    const until = process.hrtime.bigint() + BigInt(duration_us) * 1000n;
    while (process.hrtime.bigint() < until);
  }
  fs.writeSync(fd, `${seq} ${enqueued_ns} ${started} ${nowNs()} ${process.pid}\n`);
}, { connection: connectionOf(process.env.CONVEYOR_REDIS_URL), concurrency: Number(process.argv[2]) });

await worker.waitUntilReady();
process.send('ready');
process.on('SIGTERM', async () => {
  await worker.close();
  process.exit(0);
});
