/**
 * Generates packages/audit/EVENTS.md (the event taxonomy table) from the schemas in src/events.ts.
 *   node --conditions=vramseal-source --import tsx packages/audit/scripts/events-md.ts --write
 * Without --write it prints the Markdown. test/events-md.test.ts fails when EVENTS.md is out of date.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { TSchema } from '@sinclair/typebox';
import {
  ActorSchema,
  AUDIT_EVENT_TYPES,
  ByteRangeSchema,
  ChangesSchema,
  DIGEST_FORMAT,
  EVENT_CATALOG,
  EVENT_SCHEMAS,
  IP_FORMAT,
  KEY_PATTERN,
  LIMITS,
  METHOD_PATTERN,
  QuerySchema,
  ResourceSchema,
  ResultSchema,
  SHA256_PATTERN,
  SINGLE_LINE_PATTERN,
  TIMESTAMP_FORMAT,
  TOKEN_PREFIX_PATTERN,
} from '../src/events.js';
import { TOKEN_FINGERPRINT_PATTERN } from '../src/fingerprint.js';

export const EVENTS_MD_PATH = fileURLToPath(new URL('../EVENTS.md', import.meta.url));

const NAMED: [TSchema, string][] = [
  [ActorSchema, '[actor](#actor)'],
  [ResourceSchema, '[resource](#resource)'],
  [ResultSchema, '[result](#result)'],
  [ChangesSchema, '[changes](#free-form-objects)'],
  [QuerySchema, '[query](#free-form-objects)'],
  [ByteRangeSchema, '{offset: count, length: count}'],
];

/** Short human description of a field schema. */
export function describe(s: TSchema): string {
  for (const [schema, name] of NAMED) if (s === schema) return name;
  if (Array.isArray(s.anyOf)) {
    if (s.anyOf.every((x: TSchema) => x.const !== undefined)) {
      return s.anyOf.map((x: TSchema) => `\`${x.const}\``).join(' \\| ');
    }
    return s.anyOf.map(describe).join(' \\| ');
  }
  switch (s.type) {
    case 'string':
      if (s.const !== undefined) return `\`${s.const}\``;
      if (s.format === TIMESTAMP_FORMAT) return 'timestamp';
      if (s.format === IP_FORMAT) return 'ip';
      if (s.format === DIGEST_FORMAT) return 'digest';
      if (s.pattern === SHA256_PATTERN) return 'sha256 hex';
      if (s.pattern === TOKEN_FINGERPRINT_PATTERN) return 'token fingerprint';
      if (s.pattern === TOKEN_PREFIX_PATTERN) return 'token fingerprint or ≤ 8-char prefix';
      if (s.pattern === METHOD_PATTERN) return 'method token';
      if (s.pattern === SINGLE_LINE_PATTERN)
        return s.maxLength === LIMITS.id ? 'id' : `path ≤ ${s.maxLength}`;
      if (s.pattern === undefined) return `text ≤ ${s.maxLength}`;
      return `string /${s.pattern}/`;
    case 'integer':
      if (s.minimum === 0 && s.maximum === Number.MAX_SAFE_INTEGER) return 'count';
      if (s.minimum === 1 && s.maximum === Number.MAX_SAFE_INTEGER) return 'seq (≥ 1)';
      return `integer ${s.minimum}–${s.maximum}`;
    case 'number':
      return s.maximum === undefined ? 'number ≥ 0' : `number ${s.minimum}–${s.maximum}`;
    case 'boolean':
      return 'boolean';
    case 'array':
      return `${describe(s.items as TSchema)}[] (≤ ${s.maxItems})`;
    default:
      return 'object';
  }
}

function fields(s: TSchema): string {
  const req = new Set(s.required as string[]);
  return Object.entries(s.properties as Record<string, TSchema>)
    .filter(([k]) => k !== 'type' && k !== 'timestamp')
    .map(([k, v]) => `\`${k}${req.has(k) ? '' : '?'}\`: ${describe(v)}`)
    .join('<br>');
}

/** The full text of EVENTS.md. */
export function renderEventsMd(): string {
  const lines: string[] = [];
  lines.push('# Audit event taxonomy');
  lines.push('');
  lines.push(
    '<!-- Generated from packages/audit/src/events.ts by packages/audit/scripts/events-md.ts — do not edit. -->',
  );
  lines.push('');
  lines.push(
    `${AUDIT_EVENT_TYPES.length} event types, one union discriminated by \`type\`. Every event also has \`type\` and ` +
      '`timestamp` (strict RFC 3339, e.g. `2026-11-27T04:36:42.123Z`). `?` marks an optional field. No other ' +
      'fields are accepted. **Critical** events are never dropped when the queue is full and are made durable ' +
      'at once in `hybrid` flush mode.',
  );
  lines.push('');
  lines.push('| type | category | critical | fields |');
  lines.push('| ---- | -------- | :------: | ------ |');
  for (const t of AUDIT_EVENT_TYPES) {
    const info = EVENT_CATALOG[t];
    lines.push(
      `| \`${t}\` | ${info.category} | ${info.critical ? '**yes**' : ''} | ${fields(EVENT_SCHEMAS[t] as TSchema)} |`,
    );
  }
  lines.push('');
  lines.push('## Descriptions');
  lines.push('');
  for (const t of AUDIT_EVENT_TYPES) lines.push(`- \`${t}\`: ${EVENT_CATALOG[t].description}`);
  lines.push('');
  lines.push('## Shared shapes');
  lines.push('');
  lines.push('### actor');
  lines.push('');
  lines.push(fields(ActorSchema).replaceAll('<br>', ', '));
  lines.push('');
  lines.push('### resource');
  lines.push('');
  lines.push(fields(ResourceSchema).replaceAll('<br>', ', '));
  lines.push('');
  lines.push('### result');
  lines.push('');
  lines.push(
    (ResultSchema.anyOf as TSchema[])
      .map(
        (v) =>
          `\`{${Object.keys(v.properties)
            .map((k) => (k === 'status' ? `"status": "${v.properties.status.const}"` : `"${k}": text`))
            .join(', ')}}\``,
      )
      .join(' or '),
  );
  lines.push('');
  lines.push('### Free-form objects');
  lines.push('');
  lines.push(
    `\`pool.modified.changes\`: up to ${LIMITS.freeFormKeys} keys matching \`${KEY_PATTERN}\`, any JSON values ` +
      `(nested up to the event depth limit). \`audit.admin_query.query\`: the same keys, values string ` +
      `(text ≤ ${LIMITS.text}), number or boolean. The keys \`__proto__\`, \`constructor\` and \`prototype\` are refused.`,
  );
  lines.push('');
  lines.push('## Field types');
  lines.push('');
  lines.push('| name | rule |');
  lines.push('| ---- | ---- |');
  lines.push(`| id | 1–${LIMITS.id} characters, single line (no tab or newline) |`);
  lines.push(`| text | 0–${LIMITS.text} characters; tab and newline allowed |`);
  lines.push(`| path ≤ n | 1–n characters, single line |`);
  lines.push(
    '| timestamp | strict RFC 3339 date-time: upper-case `T`/`Z`, 1–9 fraction digits, real calendar dates |',
  );
  lines.push(
    '| ip | IPv4 dotted quad or IPv6; stored normalized (RFC 5952; IPv4-mapped IPv6 stored as IPv4) |',
  );
  lines.push(
    '| digest | 64 or 128 lower-case hex digits, optionally prefixed `scheme:` or `scheme:param:` (e.g. `sha256-merkle-v1:16384:…`) |',
  );
  lines.push('| sha256 hex | exactly 64 lower-case hex digits |');
  lines.push(
    '| token fingerprint | `token:` + 6 lower-case hex digits — `tokenFingerprint(token)`; never the token |',
  );
  lines.push('| method token | an RFC 9110 token of 1–32 characters (e.g. `GET`) |');
  lines.push(`| count | integer 0 – 2^53−1 |`);
  lines.push(`| X[] (≤ n) | array of at most n items |`);
  lines.push('');
  lines.push(
    `Lengths count characters (Unicode code points; an emoji counts one). Every string, object key included, ` +
      'must be free of NUL, ESC and other C0 controls except tab and newline, DEL, C1 controls (U+0080–U+009F), ' +
      'bidi overrides U+202A–U+202E and U+2066–U+2069, U+FEFF and unpaired surrogates; numbers must be finite; ' +
      `an event may nest ${LIMITS.depth} levels, hold arrays of at most ${LIMITS.array} items and at most ` +
      `${LIMITS.totalChars} characters of strings in all. Record untrusted text through \`escapeForAudit()\`.`,
  );
  lines.push('');
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const md = renderEventsMd();
  if (process.argv.includes('--write')) {
    writeFileSync(EVENTS_MD_PATH, md);
    console.log(`wrote ${EVENTS_MD_PATH}`);
  } else {
    process.stdout.write(md);
  }
}
