import type { KubernetesObject } from "@kubernetes/client-node";
import { isDeepStrictEqual } from "node:util";

/** Decides whether an update event is worth a reconcile. */
export type Predicate<T extends KubernetesObject = KubernetesObject> = (oldObj: T, newObj: T) => boolean;

/** The spec changed: the API server bumps metadata.generation on spec changes, not on status writes. */
export const generationChanged: Predicate = (o, n) => o.metadata?.generation !== n.metadata?.generation;

export const annotationsChanged: Predicate = (o, n) =>
  !isDeepStrictEqual(o.metadata?.annotations ?? {}, n.metadata?.annotations ?? {});

export const labelsChanged: Predicate = (o, n) => !isDeepStrictEqual(o.metadata?.labels ?? {}, n.metadata?.labels ?? {});

/** Deletion started, or the finalizers that hold it changed. */
export const deletionChanged: Predicate = (o, n) =>
  o.metadata?.deletionTimestamp !== n.metadata?.deletionTimestamp ||
  !isDeepStrictEqual(o.metadata?.finalizers ?? [], n.metadata?.finalizers ?? []);

/** The default for controllers that own their status: every change but the controller's own status writes. */
export const specOrMetadataChanged: Predicate[] = [generationChanged, annotationsChanged, labelsChanged, deletionChanged];
