import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { EVENTS_MD_PATH, renderEventsMd } from '../scripts/events-md.js';
import { AUDIT_EVENT_TYPES, CRITICAL_EVENT_TYPES } from '../src/events.js';

test('EVENTS.md is up to date with the schemas (regenerate: node --conditions=vramseal-source --import tsx packages/audit/scripts/events-md.ts --write)', () => {
  assert.equal(readFileSync(EVENTS_MD_PATH, 'utf8'), renderEventsMd());
});

test('EVENTS.md lists every event type once, critical ones marked', () => {
  const md = renderEventsMd();
  for (const t of AUDIT_EVENT_TYPES) {
    const rows = md.split('\n').filter((l) => l.startsWith(`| \`${t}\` |`));
    assert.equal(rows.length, 1, t);
    assert.equal((rows[0] as string).includes('**yes**'), CRITICAL_EVENT_TYPES.has(t), t);
  }
});
