export * from './canonical.js';
export * from './errors.js';
export * from './events.js';
export * from './fingerprint.js';
export * from './ip.js';
export * from './record.js';
export * from './rfc3339.js';
export * from './validate.js';
