import type { ServerResponse } from 'node:http';

/** A request in flight, as `OpenRequests` links it. */
export interface OpenLink {
  readonly res: ServerResponse;
  /** Given up at the drain's deadline: a body that ends with the connection is reset, so it cannot look complete. */
  cutAtDeadline(): void;
  prevOpen: OpenLink | undefined;
  nextOpen: OpenLink | undefined;
}

/**
 * The requests in flight, in the order they were read, for a drain to look at. Linked through
 * the requests themselves rather than kept in a Set: a Set of responses, added to and deleted
 * from at every request, raised the proxy's peak RSS under load by about 35 MiB.
 */
export class OpenRequests implements Iterable<ServerResponse> {
  #head: OpenLink | undefined;
  #tail: OpenLink | undefined;

  add(link: OpenLink): void {
    link.prevOpen = this.#tail;
    link.nextOpen = undefined;
    if (this.#tail === undefined) this.#head = link;
    else this.#tail.nextOpen = link;
    this.#tail = link;
  }

  /** Only for a link added and not yet deleted. */
  delete(link: OpenLink): void {
    const { prevOpen, nextOpen } = link;
    if (prevOpen === undefined) this.#head = nextOpen;
    else prevOpen.nextOpen = nextOpen;
    if (nextOpen === undefined) this.#tail = prevOpen;
    else nextOpen.prevOpen = prevOpen;
    link.prevOpen = undefined;
    link.nextOpen = undefined;
  }

  /** The requests, oldest first. */
  *links(): Generator<OpenLink> {
    for (let link = this.#head; link !== undefined; link = link.nextOpen) yield link;
  }

  /** The responses, oldest request first. */
  *[Symbol.iterator](): Iterator<ServerResponse> {
    for (let link = this.#head; link !== undefined; link = link.nextOpen) yield link.res;
  }
}
