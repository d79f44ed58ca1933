/**
 * Hostile-event fuzzing (issue 9): valid events (schema-derived, fixtures/event-arbitrary.ts) with
 * 1–3 hostile mutations each — control characters and ANSI escapes, bidi overrides, BOM, lone
 * surrogates, huge strings, deep nesting, prototype-pollution keys (`__proto__`, `constructor`,
 * `prototype`), wrong types, unknown or hostile keys, throwing getters — emitted into a real trail.
 *
 * Each one must be either rejected with an AuditValidationError whose message names the event type,
 * the field path and the rule (no other error type, no crash), or stored inert: no forbidden character
 * in any stored string or key, the stored event equal to what validation returned, the trail verifies,
 * and Object.prototype untouched. Mutations that insert a forbidden character must be rejected.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { AuditLogger, AuditValidationError, validateEvent, verifyTrail } from '@vramseal/audit';
import fc from 'fast-check';
import { pino } from 'pino';
import { validEvent } from '../fixtures/event-arbitrary.js';
import { reportRow } from './summary.js';
import { readRecords, tempDir } from './trail-io.js';

// biome-ignore lint/suspicious/noControlCharactersInRegex: the characters an event may never hold
const FORBIDDEN = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069\uFEFF]|\p{Cs}/u;
const CTRL = [
  '\u0000',
  '\u001b[31m',
  '\u001b]0;x\u0007',
  '\u0007',
  '\u0085',
  '\u009b',
  '\r',
  '\u000b',
  '\u007f',
];
const BIDI = ['\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069'];
const SURR = ['\ud800', '\udfff', '\udc00\ud800', 'a\ud83d'];

type Kind =
  | 'ctrl'
  | 'bidi'
  | 'bom'
  | 'surrogate'
  | 'huge'
  | 'deep'
  | 'proto'
  | 'type'
  | 'extra'
  | 'hostile-key'
  | 'getter';
const MUST_REJECT = new Set<Kind>(['ctrl', 'bidi', 'bom', 'surrogate', 'hostile-key']);

interface Mutation {
  kind: Kind;
  pick: number;
  pos: number;
  size: number;
  variant: number;
}

const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom<Kind>(
    'ctrl',
    'bidi',
    'bom',
    'surrogate',
    'huge',
    'deep',
    'proto',
    'type',
    'extra',
    'hostile-key',
    'getter',
  ),
  pick: fc.nat(),
  pos: fc.nat(),
  size: fc.nat(),
  variant: fc.nat(),
});

type Slot = { parent: Record<string, unknown> | unknown[]; key: string | number };

/** Property slots of `o`, depth-first, down to depth 64 (a mutation may already have nested deeply). */
function slots(o: unknown, out: Slot[] = [], containers: Record<string, unknown>[] = [], depth = 0): Slot[] {
  if (depth > 64) return out;
  if (Array.isArray(o)) {
    o.forEach((v, i) => {
      out.push({ parent: o, key: i });
      slots(v, out, containers, depth + 1);
    });
  } else if (o && typeof o === 'object' && !Object.getOwnPropertyDescriptor(o, 'g')?.get) {
    containers.push(o as Record<string, unknown>);
    for (const k of Object.keys(o)) {
      const d = Object.getOwnPropertyDescriptor(o, k);
      out.push({ parent: o as Record<string, unknown>, key: k });
      if (d && 'value' in d) slots(d.value, out, containers, depth + 1);
    }
  }
  return out;
}

function containersOf(o: unknown): Record<string, unknown>[] {
  const c: Record<string, unknown>[] = [];
  slots(o, [], c);
  return c;
}

const get = (s: Slot) => {
  const d = Object.getOwnPropertyDescriptor(s.parent, s.key);
  return d && 'value' in d ? d.value : undefined;
};
const set = (s: Slot, v: unknown) => {
  Object.defineProperty(s.parent, s.key, { value: v, enumerable: true, configurable: true, writable: true });
};

function deep(depth: number, arrays: boolean): unknown {
  let v: unknown = 'leaf';
  for (let i = 0; i < depth; i++) v = arrays ? [v] : { n: v };
  return v;
}

const WRONG = [
  () => Number.NaN,
  () => Number.POSITIVE_INFINITY,
  () => -0,
  () => null,
  () => undefined,
  () => true,
  () => [],
  () => ({}),
  () => 1n,
  () => Symbol('s'),
  () => () => 1,
  () => new Date(0),
  () => Buffer.from('x'),
  () => new Map([['a', 1]]),
  () => Object.create(null),
  () => 2 ** 64,
];

/** Applies one mutation in place; returns whether it put a forbidden character into a string or key. */
function mutate(ev: Record<string, unknown>, m: Mutation): boolean {
  const all = slots(ev);
  const strings = all.filter((s) => typeof get(s) === 'string');
  const insert = (chars: string) => {
    if (strings.length === 0) {
      ev[`x_${m.variant % 1000}`] = chars;
      return true;
    }
    const s = strings[m.pick % strings.length] as Slot;
    const v = get(s) as string;
    const p = m.pos % (v.length + 1);
    set(s, v.slice(0, p) + chars + v.slice(p));
    return true;
  };
  const target = () => (all.length ? (all[m.pick % all.length] as Slot) : ({ parent: ev, key: 'x' } as Slot));
  const holder = () => {
    const c = containersOf(ev);
    return c[m.pick % c.length] as Record<string, unknown>;
  };
  switch (m.kind) {
    case 'ctrl':
      return insert(CTRL[m.variant % CTRL.length] as string);
    case 'bidi':
      return insert(BIDI[m.variant % BIDI.length] as string);
    case 'bom':
      return insert('\ufeff');
    case 'surrogate':
      return insert(SURR[m.variant % SURR.length] as string);
    case 'huge': {
      // 1 in 200 is 4 Mi characters; the others 1 025 .. 66 560.
      const n = m.variant % 200 === 0 ? 4 * 1024 * 1024 : 1025 + (m.size % 65_536);
      set(target(), (m.variant & 1 ? '\u{1F600}' : 'x').repeat(n));
      return false;
    }
    case 'deep':
      set(target(), deep(m.variant % 7 === 0 ? 100_000 : 10 + (m.size % 3000), (m.variant & 1) === 1));
      return false;
    case 'proto': {
      const key = ['__proto__', 'constructor', 'prototype'][m.variant % 3] as string;
      const payload = JSON.parse(`{"${key}":{"polluted":"yes","isAdmin":true}}`);
      const h = holder();
      // Own data property (as JSON.parse makes it), so `__proto__` is a key, not a prototype change.
      Object.defineProperty(h, key, {
        value: payload[key],
        enumerable: true,
        configurable: true,
        writable: true,
      });
      return false;
    }
    case 'type':
      set(target(), (WRONG[m.variant % WRONG.length] as () => unknown)());
      return false;
    case 'extra':
      holder()[`unknown_${m.variant % 100}`] = 'x';
      return false;
    case 'hostile-key': {
      const bad = [...CTRL, ...BIDI, '\ufeff', ...SURR][
        m.variant % (CTRL.length + BIDI.length + 1 + SURR.length)
      ];
      holder()[`k${bad}`] = 'v';
      return true;
    }
    case 'getter': {
      const s = target();
      if (Array.isArray(s.parent)) s.parent.push(0);
      Object.defineProperty(
        Array.isArray(s.parent) ? holder() : s.parent,
        Array.isArray(s.parent) ? 'g' : s.key,
        {
          get() {
            throw new Error('hostile getter');
          },
          enumerable: true,
          configurable: true,
        },
      );
      return false;
    }
  }
}

/** True when a string or key of `v` (own data properties, getters not called) holds a forbidden character. */
function hasForbidden(v: unknown, depth = 0): boolean {
  if (depth > 80) return false;
  if (typeof v === 'string') return FORBIDDEN.test(v);
  if (v && typeof v === 'object') {
    for (const k of Object.keys(v)) {
      if (FORBIDDEN.test(k)) return true;
      const d = Object.getOwnPropertyDescriptor(v, k);
      if (d && 'value' in d && hasForbidden(d.value, depth + 1)) return true;
    }
  }
  return false;
}

export interface EventFuzzResult {
  events: number;
  rejected: number;
  storedInert: number;
  undetected: number;
}

export async function runEventFuzz(opts: { seed: number; runs: number }): Promise<EventFuzzResult> {
  const dir = join(tempDir('fuzz-events'), 'trail');
  const key = Buffer.alloc(32, 0x42);
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'fuzz',
    macKey: key,
    flush: { mode: 'batched', maxEvents: 4096, maxDelayMs: 50 },
    logger: pino({ level: 'silent' }),
  });
  const protoKeys = Object.getOwnPropertyNames(Object.prototype).join();
  const res: EventFuzzResult = { events: 0, rejected: 0, storedInert: 0, undetected: 0 };
  const accepted = new Map<number, unknown>();
  const problems: string[] = [];
  try {
    const run = fc.check(
      fc.property(validEvent(), fc.array(mutationArb, { minLength: 1, maxLength: 3 }), (base, muts) => {
        const ev = structuredClone(base);
        let mustReject = false;
        const kinds: Kind[] = [];
        for (const m of muts) {
          let inserted = false;
          try {
            inserted = mutate(ev, m);
          } catch {
            continue; // the target cannot take it (a typed array index, a frozen object): not applied
          }
          if (inserted && MUST_REJECT.has(m.kind)) mustReject = true;
          kinds.push(m.kind);
        }
        // Inserting inside a surrogate pair can form valid pairs, and a later mutation can replace
        // the string: what counts is whether a forbidden character is in the event now.
        if (mustReject) mustReject = hasForbidden(ev);
        res.events++;
        let seq: number;
        try {
          seq = log.emit(ev as never).seq;
        } catch (e) {
          if (!(e instanceof AuditValidationError)) {
            problems.push(`${kinds}: ${String(e)}`);
            throw new Error(`not an AuditValidationError (mutations ${kinds}): ${String(e)}`);
          }
          const where = e.path || '<event>';
          if (
            !e.rule ||
            !e.message.includes(where) ||
            !e.message.includes(e.rule) ||
            !e.message.includes(e.eventType)
          )
            throw new Error(`unclear validation error: ${e.message.slice(0, 300)}`);
          res.rejected++;
          return;
        }
        if (mustReject) {
          res.undetected++;
          problems.push(`accepted although it holds a forbidden character (${kinds})`);
          return;
        }
        accepted.set(seq, JSON.parse(JSON.stringify(validateEvent(ev))));
      }),
      { seed: opts.seed, numRuns: opts.runs, endOnFailure: true },
    );
    if (run.failed) {
      const err = run.errorInstance as Error | undefined;
      problems.push(
        `property failed (seed ${opts.seed}, path ${run.counterexamplePath}): ${err?.message ?? 'unknown'}`,
      );
    }
    await log.close();
    if (Object.getOwnPropertyNames(Object.prototype).join() !== protoKeys)
      problems.push('Object.prototype changed');
    if (
      ({} as Record<string, unknown>).polluted !== undefined ||
      ({} as Record<string, unknown>).isAdmin !== undefined
    )
      problems.push('prototype polluted');
    const report = await verifyTrail(dir, { macKey: key, concurrency: 0 });
    if (!report.ok) problems.push(`trail does not verify: ${JSON.stringify(report.failures.slice(0, 3))}`);
    for (const r of readRecords(dir)) {
      const want = accepted.get(r.seq);
      if (want === undefined) continue;
      if (hasForbidden(r.event)) {
        res.undetected++;
        problems.push(`seq ${r.seq} stored a forbidden character`);
      }
      try {
        assert.deepStrictEqual(r.event, want);
        res.storedInert++;
      } catch {
        problems.push(`seq ${r.seq}: stored event differs from the validated one`);
      }
      accepted.delete(r.seq);
    }
    if (accepted.size > 0) problems.push(`${accepted.size} accepted event(s) missing from the trail`);
  } finally {
    reportRow({
      category: 'fuzz: hostile events',
      injected: res.events,
      detected: res.rejected + res.storedInert,
      undetected: res.undetected,
      lost: accepted.size,
      note: `seed ${opts.seed}; ${res.rejected} rejected with a clear error, ${res.storedInert} stored inert and verified`,
    });
  }
  assert.deepEqual(problems, []);
  return res;
}
