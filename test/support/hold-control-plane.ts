// Starts a control plane, prints its process IDs as JSON, and waits to be killed. Used to check
// that the harness's servers die with the process that started them.
import { ControlPlane } from "../../src/localstack/control-plane.ts";

const cp = await ControlPlane.start();
process.stdout.write(JSON.stringify({ pids: cp.pids(), dir: cp.dir }) + "\n");
setInterval(() => undefined, 60_000);
