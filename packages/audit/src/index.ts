export * from './canonical.js';
export * from './record.js';
