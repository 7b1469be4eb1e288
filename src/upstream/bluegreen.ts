import type { IncomingHttpHeaders } from 'node:http';
import { matchesSecret } from '../config/secret.js';
import type { Colour, ColoursDef, Snapshot } from '../config/snapshot.js';
import { fieldText } from '../routing/identity.js';
import { headerField } from '../routing/request-view.js';

export interface ColourChoice {
  colour: Colour;
  /** True when the preview door sent the request to the inactive colour. */
  preview: boolean;
}

// The four possible answers, built once: choosing a colour allocates nothing per request.
const ACTIVE: Readonly<Record<Colour, ColourChoice>> = {
  blue: Object.freeze({ colour: 'blue', preview: false }),
  green: Object.freeze({ colour: 'green', preview: false }),
};
const PREVIEW: Readonly<Record<Colour, ColourChoice>> = {
  blue: Object.freeze({ colour: 'green', preview: true }),
  green: Object.freeze({ colour: 'blue', preview: true }),
};

/**
 * The colour that serves a request to a blue/green service: the active one, unless the request
 * bears the preview header with exactly the preview token, which opens the inactive one. A
 * wrong or missing token is ignored, never refused, so probing learns nothing; an empty token
 * disables the door. `active` is the colour live traffic goes to: the file's, unless a guard
 * rolled the service back (rollout/guard.ts). Pure: the proxy and `explain` both decide with it.
 */
export function chooseColour(colours: ColoursDef, headers: IncomingHttpHeaders, active: Colour = colours.active): ColourChoice {
  const preview = colours.preview;
  if (preview !== undefined && preview.token !== '') {
    const offered = headerField(headers, preview.header);
    // Node reads header bytes as latin1: a token typed as UTF-8 is compared as the file wrote it,
    // as cohort headers are (and as `ficus explain -H` already gives it).
    if (typeof offered === 'string' && matchesSecret(fieldText(offered), preview.tokenDigest)) return PREVIEW[active];
  }
  return ACTIVE[active];
}

/** The other colour of the pair. */
export function otherColour(colour: Colour): Colour {
  return colour === 'blue' ? 'green' : 'blue';
}

/** What of a cutover guard (rollout/guard.ts) decides where live traffic goes. */
export interface LiveColourSource {
  effectiveActive(active: Colour): Colour;
}

/** The colour live traffic goes to: the file's `active`, or the guard's after a rollback. */
export function liveColour(def: ColoursDef, guard: LiveColourSource | undefined): Colour {
  return guard ? guard.effectiveActive(def.active) : def.active;
}

/** The colour serving live traffic for each blue/green service of `snapshot`: its reloads' cutovers are where it changes. */
export function liveColours(snapshot: Snapshot, guardOf: (service: string) => LiveColourSource | undefined): Map<string, Colour> {
  const live = new Map<string, Colour>();
  for (const [name, def] of snapshot.services) if (def.colours) live.set(name, liveColour(def.colours, guardOf(name)));
  return live;
}
