import type { Logger } from "pino";
import type { Manager } from "./manager.ts";

export interface LifecycleOptions {
  /** Longest a graceful shutdown may take before the process gives up waiting (default 25 s). */
  shutdownTimeoutMs?: number;
}

/**
 * Runs a started manager until SIGTERM or SIGINT (graceful stop: running reconciles finish, the lease
 * is released, within the timeout) or until it loses leadership. Resolves with the exit code.
 */
export async function runUntilStopped(manager: Manager, log: Logger, opts: LifecycleOptions = {}): Promise<number> {
  const timeoutMs = opts.shutdownTimeoutMs ?? 25_000;
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGTERM", () => {
      resolve("SIGTERM");
    });
    process.once("SIGINT", () => {
      resolve("SIGINT");
    });
  });
  const why = await Promise.race([signalled, manager.lostLeadership.then(() => "lost-leadership" as const)]);
  log.info({ reason: why }, "stopping");
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => {
      resolve("timeout");
    }, timeoutMs);
    timer.unref();
  });
  const stopped = await Promise.race([manager.stop().then(() => "stopped" as const), timedOut]);
  clearTimeout(timer);
  if (stopped === "timeout") {
    log.error({ timeoutMs }, "graceful shutdown timed out");
    return 1;
  }
  return why === "lost-leadership" ? 1 : 0;
}
