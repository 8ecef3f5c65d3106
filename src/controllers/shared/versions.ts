/** Dotted versions (1.2.10) compare numerically, part by part. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Azure regions in their short form: "West Europe" is "westeurope". */
export const normalizeRegion = (region: string): string => region.replace(/\s+/g, "").toLowerCase();
