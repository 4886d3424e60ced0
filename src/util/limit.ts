// A concurrency limit: image decoding ahead of a model, and the server's decoders.

/** At most `n` of the functions given to it running at once; the rest wait their turn, in order. */
export function limiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: (() => void)[] = [];
  return (fn) =>
    new Promise((resolve, reject) => {
      const start = (): void => {
        active++;
        fn()
          .then(resolve, reject)
          .finally(() => {
            active--;
            queue.shift()?.();
          });
      };
      if (active < n) start();
      else queue.push(start);
    });
}
