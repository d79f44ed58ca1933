/**
 * Validation edge cases found by the hostile-event fuzzer (fuzz-events.ts), pinned as regular tests.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AuditValidationError, validateEvent } from '@vramseal/audit';

test("an event whose `type` getter throws is rejected with AuditValidationError (not the getter's error)", () => {
  const ev = {
    get type(): string {
      throw new Error('hostile getter');
    },
    timestamp: '2026-01-01T00:00:00Z',
    shard_id: 's',
    worker_id: 'w',
  };
  assert.throws(
    () => validateEvent(ev),
    (e: unknown) => e instanceof AuditValidationError && e.path === 'type' && /type/.test(e.message),
  );
  const viaProxy = new Proxy(
    {},
    {
      get() {
        throw new Error('hostile trap');
      },
    },
  );
  assert.throws(() => validateEvent(viaProxy), AuditValidationError);
});
