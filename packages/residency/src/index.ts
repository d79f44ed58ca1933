export type * from './backend.js';
export * from './merkle.js';
