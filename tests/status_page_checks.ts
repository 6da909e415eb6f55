/**
 * Checks of the status page's output shared by its unit and end-to-end tests: a JSON schema of
 * `/status.json` with a small validator (the subset of JSON Schema it uses), and a strict
 * well-formedness check of the HTML (every element closed in order, nothing unescaped).
 *
 * @module
 */

/** The JSON Schema subset {@link schemaProblems} understands. */
export interface Schema {
  type?: string | string[];
  enum?: unknown[];
  required?: string[];
  properties?: Record<string, Schema>;
  additionalProperties?: false;
  items?: Schema;
  minimum?: number;
  format?: "date-time";
}

const outcome: Schema = {
  type: "string",
  enum: [
    "SERVING",
    "NOT_SERVING",
    "UNKNOWN",
    "SERVICE_UNKNOWN",
    "NOT_FOUND",
    "UNIMPLEMENTED",
    "DEADLINE_EXCEEDED",
    "RPC_ERROR",
    "CONNECTION_FAILED",
  ],
};
const time: Schema = { type: "string", format: "date-time" };
const http: Schema = { type: "integer", minimum: 100 };
const ms: Schema = { type: "number", minimum: 0 };

/** The schema of `/status.json`, as docs/status-page.md describes it. */
export const statusSchema: Schema = {
  type: "object",
  required: ["generatedAt", "startedAt", "upstream", "mode", "services", "changes", "answers"],
  additionalProperties: false,
  properties: {
    generatedAt: time,
    startedAt: time,
    upstream: {
      type: "object",
      required: ["target", "tls"],
      additionalProperties: false,
      properties: {
        target: { type: "string" },
        tls: { type: "string", enum: ["plaintext", "TLS", "TLS no-verify", "mTLS"] },
      },
    },
    mode: { type: "string", enum: ["on demand", "interval", "watch"] },
    intervalMs: ms,
    services: {
      type: "array",
      items: {
        type: "object",
        required: ["service", "outcome", "http", "since"],
        additionalProperties: false,
        properties: {
          service: { type: "string" },
          outcome,
          http,
          since: time,
          detail: { type: "string" },
        },
      },
    },
    changes: {
      type: "array",
      items: {
        type: "object",
        required: ["at", "service", "from", "to", "http"],
        additionalProperties: false,
        properties: {
          at: time,
          service: { type: "string" },
          from: { type: ["string", "null"] },
          to: outcome,
          http,
          detail: { type: "string" },
        },
      },
    },
    answers: {
      type: "object",
      required: ["windowSeconds", "answersPerSecond"],
      additionalProperties: false,
      properties: {
        windowSeconds: { type: "integer", minimum: 1 },
        answersPerSecond: ms,
        latencyMs: {
          type: "object",
          required: ["mean", "p50", "p99"],
          additionalProperties: false,
          properties: { mean: ms, p50: ms, p99: ms },
        },
      },
    },
  },
};

function typeOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number" && Number.isInteger(v)) return "integer";
  return typeof v;
}

/** Where `value` breaks `schema`, as `path: problem` lines (empty when it conforms). */
export function schemaProblems(value: unknown, schema: Schema, path = "$"): string[] {
  const problems: string[] = [];
  const actual = typeOf(value);
  if (schema.type) {
    const allowed = ([] as string[]).concat(schema.type);
    const ok = allowed.includes(actual) || (actual === "integer" && allowed.includes("number"));
    if (!ok) return [`${path}: is ${actual}, expected ${allowed.join(" or ")}`];
  }
  if (schema.enum && !schema.enum.includes(value)) {
    problems.push(`${path}: ${JSON.stringify(value)} is not one of ${schema.enum.join(", ")}`);
  }
  if (schema.minimum !== undefined && typeof value === "number" && value < schema.minimum) {
    problems.push(`${path}: ${value} < ${schema.minimum}`);
  }
  if (schema.format === "date-time" && typeof value === "string") {
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(value)) {
      problems.push(`${path}: ${JSON.stringify(value)} is not an ISO 8601 UTC time`);
    }
  }
  if (actual === "array" && schema.items) {
    (value as unknown[]).forEach((v, i) =>
      problems.push(...schemaProblems(v, schema.items!, `${path}[${i}]`))
    );
  }
  if (actual === "object") {
    const obj = value as Record<string, unknown>;
    for (const key of schema.required ?? []) {
      if (!(key in obj)) problems.push(`${path}: missing ${key}`);
    }
    for (const [key, v] of Object.entries(obj)) {
      const sub = schema.properties?.[key];
      if (sub) problems.push(...schemaProblems(v, sub, `${path}.${key}`));
      else if (schema.additionalProperties === false) problems.push(`${path}: unexpected ${key}`);
    }
  }
  return problems;
}

const VOID_ELEMENTS = new Set(["meta", "br", "hr", "img", "input", "link"]);

/**
 * Where `html` is not strictly well-formed: a `<` or `>` outside a tag (unescaped text), an
 * unquoted attribute value, an element closed out of order or left open, or any script.
 */
export function htmlProblems(html: string): string[] {
  const problems: string[] = [];
  const stack: string[] = [];
  const tag = /<(\/?)([a-zA-Z][a-zA-Z0-9]*)((?:\s+[a-z-]+(?:="[^"<>]*")?)*)\s*>|<!DOCTYPE html>/y;
  let text = "";
  for (let i = 0; i < html.length;) {
    tag.lastIndex = i;
    const m = tag.exec(html);
    if (!m) {
      const c = html[i];
      if (c === "<" || c === ">") problems.push(`unescaped ${c} at ${i}: ${html.slice(i, i + 40)}`);
      text += c;
      i++;
      continue;
    }
    i = tag.lastIndex;
    if (m[2] === undefined) continue; // the doctype
    const name = m[2].toLowerCase();
    if (name === "script" && !m[1]) problems.push(`script element at ${m.index}`);
    if (m[1]) {
      const open = stack.pop();
      if (open !== name) problems.push(`</${name}> at ${m.index} closes <${open}>`);
    } else if (!VOID_ELEMENTS.has(name)) {
      stack.push(name);
    }
  }
  if (stack.length > 0) problems.push(`left open: ${stack.join(", ")}`);
  return problems;
}
