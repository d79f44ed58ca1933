export type * from './backend.js';
export * from './errors.js';
export * from './merkle.js';
