import { execFile } from "node:child_process";
import { promisify } from "node:util";

export interface KubectlResult {
  stdout: string;
  stderr: string;
}

/** Runs the machine's kubectl against the given kubeconfig, as a user would. */
export async function kubectl(kubeconfig: string, args: string[], input?: string): Promise<KubectlResult> {
  const run = promisify(execFile);
  const child = run("kubectl", ["--kubeconfig", kubeconfig, ...args], { timeout: 60_000 });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  try {
    return await child;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`kubectl ${args.join(" ")} failed: ${e.stderr ?? e.message}`, { cause: err });
  }
}
