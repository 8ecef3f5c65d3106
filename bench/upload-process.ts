// The operator's import path, alone in a process so its CPU and memory can be measured: probe the
// source URL, stream it, convert to a fixed VHD, write pages into a page blob. Prints one JSON line.
import { AnonymousCredential, PageBlobClient } from "@azure/storage-blob";
import { toFixedVhd } from "../src/vhd/convert.ts";
import { openSource, probeSource } from "../src/vhd/source.ts";
import { transferPool, uploadChunks } from "../src/vhd/upload.ts";

const [sourceUrl, blobSasUrl, concurrencyArg] = process.argv.slice(2);
if (!sourceUrl || !blobSasUrl) throw new Error("usage: upload-process.ts <source url> <page blob SAS url> [concurrency]");

const started = performance.now();
const cpu0 = process.cpuUsage();
const { layout } = await probeSource(sourceUrl, "auto");
const blob = new PageBlobClient(blobSasUrl, new AnonymousCredential());
await blob.create(layout.vhdSize);
const { stream } = await openSource(sourceUrl);
const concurrency = Number(concurrencyArg ?? 8);
const progress = await uploadChunks(blob, toFixedVhd(stream, layout, { pool: transferPool(concurrency) }), layout.vhdSize, { concurrency });
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpu0);
process.stdout.write(
  JSON.stringify({
    seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    ...progress,
  }) + "\n",
);
