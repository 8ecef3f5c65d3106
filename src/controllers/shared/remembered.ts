/**
 * Facts read from Azure that stay true for a while, remembered per ARM client (one subscription and
 * identity) for `ttlMs`, at most `limit` of them (the oldest goes first). Saves reads that every object
 * and every pass would otherwise repeat.
 */
export class Remembered<V> {
  private readonly byClient = new WeakMap<object, Map<string, { at: number; value: V }>>();
  private readonly ttlMs: number;
  private readonly limit: number;

  constructor(ttlMs: number, limit = 1_000) {
    this.ttlMs = ttlMs;
    this.limit = limit;
  }

  get(client: object, key: string): V | undefined {
    const entry = this.byClient.get(client)?.get(key);
    return entry && Date.now() - entry.at < this.ttlMs ? entry.value : undefined;
  }

  set(client: object, key: string, value: V): void {
    let known = this.byClient.get(client);
    if (!known) {
      known = new Map();
      this.byClient.set(client, known);
    }
    known.delete(key);
    known.set(key, { at: Date.now(), value });
    // A Map iterates in insertion order: the first key is the oldest.
    if (known.size > this.limit) known.delete(known.keys().next().value ?? "");
  }

  /** Forgets everything remembered for `client`. */
  forget(client: object): void {
    this.byClient.delete(client);
  }
}
