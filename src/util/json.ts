// JSON from files someone else wrote, bounded before it is parsed: a document nested deeper than
// MAX_JSON_DEPTH is refused in one linear scan, so no later walk of it (a check, an error message that
// quotes it) can overflow the stack.

/** Deeper than any document of ours or of the taggers' (contracts, tags files, headers: under 10). */
export const MAX_JSON_DEPTH = 100;

/** The deepest nesting of arrays and objects in `text` (brackets inside strings not counted). */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92)
        i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) max = Math.max(max, ++depth);
    else if (c === 93 || c === 125) depth--;
  }
  return max;
}

/** JSON.parse, after refusing a document nested deeper than `maxDepth` (an Error saying so). */
export function parseJson(text: string, maxDepth = MAX_JSON_DEPTH): unknown {
  if (jsonDepth(text) > maxDepth) throw new Error(`it is nested more than ${maxDepth} levels deep`);
  return JSON.parse(text);
}
