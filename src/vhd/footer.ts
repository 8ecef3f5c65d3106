/**
 * The VHD footer and dynamic-disk header (Microsoft's VHD specification 1.0): 512 bytes, big-endian.
 * Azure accepts fixed VHDs whose virtual size is a whole number of MiB.
 */

export const SECTOR = 512;
export const MiB = 1024 * 1024;

export const DiskType = { Fixed: 2, Dynamic: 3, Differencing: 4 } as const;

export interface VhdFooter {
  diskType: number;
  currentSize: number;
  originalSize: number;
  /** For dynamic disks, where the dynamic header is. */
  dataOffset: bigint;
  creatorApp: string;
  geometry: { cylinders: number; heads: number; sectorsPerTrack: number };
}

/** Why bytes are not the VHD they claim to be. */
export class VhdFormatError extends Error {
  readonly reason: string;

  constructor(reason: string, message: string) {
    super(message);
    this.name = "VhdFormatError";
    this.reason = reason;
  }
}

function checksum(buf: Buffer, skipAt: number): number {
  let sum = 0;
  for (let i = 0; i < buf.length; i++) if (i < skipAt || i >= skipAt + 4) sum += buf[i] ?? 0;
  return ~sum >>> 0;
}

export function isVhdFooter(buf: Buffer): boolean {
  return buf.length >= 8 && buf.toString("latin1", 0, 8) === "conectix";
}

/** Parses and checks a footer: cookie, checksum and a known disk type. */
export function parseFooter(buf: Buffer): VhdFooter {
  if (buf.length !== SECTOR || !isVhdFooter(buf)) throw new VhdFormatError("InvalidVhdFooter", "no VHD footer (cookie 'conectix') where one must be");
  if (checksum(buf, 64) !== buf.readUInt32BE(64)) throw new VhdFormatError("InvalidVhdFooter", "the VHD footer checksum does not match");
  const diskType = buf.readUInt32BE(60);
  if (diskType !== DiskType.Fixed && diskType !== DiskType.Dynamic && diskType !== DiskType.Differencing) {
    throw new VhdFormatError("InvalidVhdFooter", `unknown VHD disk type ${diskType}`);
  }
  return {
    diskType,
    originalSize: Number(buf.readBigUInt64BE(40)),
    currentSize: Number(buf.readBigUInt64BE(48)),
    dataOffset: buf.readBigUInt64BE(16),
    creatorApp: buf.toString("latin1", 28, 32),
    geometry: { cylinders: buf.readUInt16BE(56), heads: buf.readUInt8(58), sectorsPerTrack: buf.readUInt8(59) },
  };
}

/** CHS geometry for a disk of `size` bytes, per the specification's appendix. */
export function chsGeometry(size: number): { cylinders: number; heads: number; sectorsPerTrack: number } {
  let total = Math.floor(size / SECTOR);
  if (total > 65535 * 16 * 255) total = 65535 * 16 * 255;
  let spt: number;
  let heads: number;
  let cth: number;
  if (total >= 65535 * 16 * 63) {
    spt = 255;
    heads = 16;
    cth = Math.floor(total / spt);
  } else {
    spt = 17;
    cth = Math.floor(total / spt);
    heads = Math.max(4, Math.floor((cth + 1023) / 1024));
    if (cth >= heads * 1024 || heads > 16) {
      spt = 31;
      heads = 16;
      cth = Math.floor(total / spt);
    }
    if (cth >= heads * 1024) {
      spt = 63;
      heads = 16;
      cth = Math.floor(total / spt);
    }
  }
  return { cylinders: Math.floor(cth / heads), heads, sectorsPerTrack: spt };
}

/** A fixed-VHD footer for `size` bytes of disk; `uniqueId` keeps it reproducible when given. */
export function buildFixedFooter(size: number, uniqueId?: Buffer, now: Date = new Date()): Buffer {
  const f = Buffer.alloc(SECTOR);
  f.write("conectix", 0, "latin1");
  f.writeUInt32BE(2, 8);
  f.writeUInt32BE(0x00010000, 12);
  f.writeBigUInt64BE(0xffffffffffffffffn, 16);
  f.writeUInt32BE(Math.max(0, Math.floor((now.getTime() - Date.UTC(2000, 0, 1)) / 1000)), 24);
  f.write("aio ", 28, "latin1");
  f.writeUInt32BE(0x00010000, 32);
  f.write("Wi2k", 36, "latin1");
  f.writeBigUInt64BE(BigInt(size), 40);
  f.writeBigUInt64BE(BigInt(size), 48);
  const g = chsGeometry(size);
  f.writeUInt16BE(g.cylinders, 56);
  f.writeUInt8(g.heads, 58);
  f.writeUInt8(g.sectorsPerTrack, 59);
  f.writeUInt32BE(DiskType.Fixed, 60);
  (uniqueId ?? Buffer.from(Array.from({ length: 16 }, () => Math.floor(Math.random() * 256)))).copy(f, 68, 0, 16);
  f.writeUInt32BE(checksum(f, 64), 64);
  return f;
}

export interface DynamicHeader {
  batOffset: number;
  maxTableEntries: number;
  blockSize: number;
}

/** Parses the 1024-byte dynamic-disk header ("cxsparse"). */
export function parseDynamicHeader(buf: Buffer): DynamicHeader {
  if (buf.length < 1024 || buf.toString("latin1", 0, 8) !== "cxsparse") {
    throw new VhdFormatError("InvalidVhdFooter", "the dynamic VHD header (cookie 'cxsparse') is missing");
  }
  if (checksum(buf.subarray(0, 1024), 36) !== buf.readUInt32BE(36)) {
    throw new VhdFormatError("InvalidVhdFooter", "the dynamic VHD header checksum does not match");
  }
  const blockSize = buf.readUInt32BE(32);
  if (blockSize === 0 || blockSize % SECTOR !== 0) throw new VhdFormatError("InvalidVhdFooter", `invalid dynamic VHD block size ${blockSize}`);
  return { batOffset: Number(buf.readBigUInt64BE(16)), maxTableEntries: buf.readUInt32BE(28), blockSize };
}
