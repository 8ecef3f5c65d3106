import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * A server process the test harness owns. Its output goes to a log file; a watchdog makes sure it
 * dies with the test process even when that is killed with SIGKILL, so no test run leaves a server
 * (or a bound port) behind.
 */
export class ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  private readonly child: ChildProcess;
  private readonly watchdog: ChildProcess;
  private readonly exited: Promise<number | null>;
  private exitCode: number | null | undefined;

  /** `removeOnOrphan`: a folder the watchdog deletes after killing the process, if this one died first. */
  constructor(name: string, command: string, args: string[], logFile: string, removeOnOrphan = "") {
    this.name = name;
    this.logFile = logFile;
    const out = openSync(logFile, "a");
    try {
      this.child = spawn(command, args, { stdio: ["ignore", out, out] });
    } finally {
      closeSync(out);
    }
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => {
        this.exitCode = code ?? (signal ? null : 0);
        resolve(this.exitCode);
      });
      this.child.once("error", () => {
        this.exitCode = null;
        resolve(null);
      });
    });
    this.watchdog = startWatchdog(this.child.pid, removeOnOrphan);
    liveProcesses.add(this);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** The last lines of the process's log, for error messages. */
  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, "utf8").split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.running) {
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    this.watchdog.kill("SIGKILL");
    liveProcesses.delete(this);
  }

  /** Resolves with the exit code when the process exits. */
  waitForExit(): Promise<number | null> {
    return this.exited;
  }

  killNow(): void {
    if (this.running) this.child.kill("SIGKILL");
    this.watchdog.kill("SIGKILL");
  }
}

const liveProcesses = new Set<ManagedProcess>();

// A test process that exits without running its cleanup (an uncaught exception, process.exit in a
// test) still takes its servers with it.
process.once("exit", () => {
  for (const p of liveProcesses) p.killNow();
});

/**
 * A shell that waits for its stdin to close (which happens when this process dies, however it dies),
 * then terminates `pid` (SIGTERM, SIGKILL after 2 s) and removes `dir`. Stopping a server normally
 * kills the watchdog first, so it never acts on a process that exited in order.
 */
const watchdogScript = `
while read -r _; do :; done
kill -TERM "$1" 2>/dev/null
i=0
while kill -0 "$1" 2>/dev/null && [ "$i" -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
kill -KILL "$1" 2>/dev/null
if [ -n "$2" ]; then rm -rf "$2"; fi
`;

function startWatchdog(pid: number | undefined, dir: string): ChildProcess {
  const watchdog = spawn("/bin/sh", ["-c", watchdogScript, "watchdog", String(pid ?? 0), dir], {
    stdio: ["pipe", "ignore", "ignore"],
  });
  watchdog.unref();
  const stdin = watchdog.stdin as (NodeJS.WritableStream & { unref?: () => void }) | null;
  stdin?.unref?.();
  return watchdog;
}

/** Whether a process with this id exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
  if (address === null || typeof address === "string") throw new Error("could not allocate a port");
  return address.port;
}

/** Calls `probe` until it returns true, failing with `describe()` after `timeoutMs`. */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  describe: () => string = () => "",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await probe()) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${describe()}`);
    }
    await sleep(100);
  }
}
