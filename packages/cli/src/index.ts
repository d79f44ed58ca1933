/**
 * `vramseal` as a library: the command tree, the daemon's HTTP server (for embedding and tests) and
 * its building blocks.
 */
export const CLI_NAME = 'vramseal';
export { DEFAULT_DEMO_BYTES, type DemoOptions, type DemoStep, runDemo } from './commands/demo.js';
export { formatBytes, formatRate, parseBytes, parseDuration, UsageError } from './output.js';
export { buildProgram, EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE, main } from './program.js';
export { ProgressBar, type ProgressOptions } from './progress.js';
export { type DaemonConfig, runDaemon } from './serve/daemon.js';
export { createLogger } from './serve/log.js';
export { DaemonMetrics } from './serve/metrics.js';
export { confineModelPath, resolveModelsDir } from './serve/paths.js';
export type * from './serve/ports.js';
export { RateLimiter } from './serve/ratelimit.js';
export { ManagerResidency } from './serve/residency.js';
export { buildServer, type Daemon, type ServerOptions } from './serve/server.js';
export { installShutdown, runShutdown, type ShutdownStep } from './serve/shutdown.js';
export {
  fingerprint,
  type Principal,
  ROLES,
  type Role,
  roleAllows,
  TokenFileError,
  TokenStore,
} from './serve/tokens.js';
export {
  defaultWorkerId,
  openManager,
  openTrail,
  resolveWorkerToken,
  verifyTrailDir,
} from './serve/worker.js';
