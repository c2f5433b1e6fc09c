// What the bullmq driver and its workers share: the connection options of a Redis URL and the
// host clock in Unix epoch nanoseconds (the protocol's time base).
import { performance } from 'node:perf_hooks';

export function connectionOf(url) {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    password: u.password ? decodeURIComponent(u.password) : undefined,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    maxRetriesPerRequest: null,
  };
}

// Epoch milliseconds with sub-millisecond precision, as integer nanoseconds.
export const nowNs = () => Math.round((performance.timeOrigin + performance.now()) * 1e6);
