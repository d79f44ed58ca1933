/**
 * `withDeadline(p, ms, onTimeout)`: settles like `p`, or rejects with `onTimeout()` after `ms`
 * (the error is built only when the deadline passes, so it can describe the state at that moment).
 * The timer never outlives the race.
 */
export async function withDeadline<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(onTimeout()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
