export interface BackoffOptions {
  /** Delay before the first retry, before jitter (ms). Default 500. */
  initialDelayMs?: number;
  /** Largest delay, before jitter (ms). Default 30000. */
  maxDelayMs?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /**
   * Share of the delay that is random: the delay is uniformly drawn from
   * [d * (1 - jitter), d]. 0 = none, 1 = "full jitter". Default 0.5.
   */
  jitter?: number;
}

/**
 * The delay before reconnect attempt `attempt` (0 = the first retry): exponential growth capped at
 * `maxDelayMs`, with random jitter so that the devices of a restaurant do not all come back at the
 * same moment after the server restarts.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const initial = options.initialDelayMs ?? 500;
  const max = options.maxDelayMs ?? 30000;
  const factor = options.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, options.jitter ?? 0.5));
  const base = Math.min(max, initial * Math.pow(factor, Math.max(0, attempt)));
  return Math.round(base * (1 - jitter * random()));
}
