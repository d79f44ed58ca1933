/**
 * Operational (non-audit) logging: pino, JSON lines on stdout, pretty-printed when stdout is a TTY.
 * Secrets are kept out at the source (only token fingerprints are ever logged); as a second line of
 * defence, authorization headers and anything named like a token or key are redacted.
 */
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export const REDACT_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'token',
  'workerToken',
  'macKey',
  'key',
  '*.token',
  '*.workerToken',
  '*.macKey',
];

export function createLogger(level = 'info', stream: NodeJS.WritableStream = process.stdout): Logger {
  const opts = { level, name: 'vramseal', redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  if ((stream as { isTTY?: boolean }).isTTY)
    return pino(
      opts,
      pretty({
        colorize: true,
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'pid,hostname,name',
        destination: stream,
      }),
    );
  return pino(opts, stream);
}
