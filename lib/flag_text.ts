/**
 * How flag messages show what the user typed: one line, quoted or shortened, never raw control
 * characters.
 *
 * @module
 */

/** Quotes a user value for a message: JSON escapes (so one line), long values shortened. */
export function quote(s: string): string {
  const short = s.length > 120 ? s.slice(0, 120) + "..." : s;
  return JSON.stringify(short).replace(/[\u0085\u2028\u2029]/g, escapeChar);
}

/** `\uXXXX` for a character that must not appear raw in a one-line message. */
function escapeChar(c: string): string {
  return "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0");
}

/** A flag name or argument echoed raw (as Go does), but shortened. */
export function shorten(s: string): string {
  return s.length > 100 ? s.slice(0, 100) + "..." : s;
}

/** Guarantees one printable line whatever the user typed (names are echoed raw, as Go does). */
export function oneLine(message: string): string {
  return message.replace(/[\p{Cc}\u2028\u2029]/gu, escapeChar);
}
