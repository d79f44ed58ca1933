import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventLimiter } from '../src/event-limiter.js';

test('EventLimiter: per-key budget per window, excess summarized per type when the window ends', () => {
  let t = 1000;
  const l = new EventLimiter({ perWindow: 2, windowMs: 100, maxKeys: 2, now: () => t });
  assert.equal(l.admit('a', 'auth.failure').allowed, true);
  assert.equal(l.admit('a', 'auth.failure').allowed, true);
  assert.equal(l.admit('a', 'auth.failure').allowed, false);
  t = 1050;
  assert.equal(l.admit('a', 'security.integrity_violation').allowed, false);
  assert.equal(l.admit('b', 'auth.failure').allowed, true, 'other keys have their own budget');
  assert.deepEqual(l.drain(), []);
  t = 1100;
  const s = l.admit('a', 'auth.failure');
  assert.equal(s.allowed, true, 'a new window');
  assert.deepEqual(
    s.summaries.map((x) => [x.key, x.type, x.count, x.first, x.last]),
    [
      ['a', 'auth.failure', 1, 1000, 1000],
      ['a', 'security.integrity_violation', 1, 1050, 1050],
    ],
  );
  // Too many keys: the oldest is summarized and evicted.
  l.admit('b', 'x');
  l.admit('b', 'x');
  const e = l.admit('c', 'x');
  assert.equal(e.allowed, true);
  assert.deepEqual(
    e.summaries.map((x) => [x.key, x.count]),
    [['b', 1]],
  );
  assert.deepEqual(l.drain(Number.POSITIVE_INFINITY), []);
});
