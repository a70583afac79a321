// A typed Roster client written against the types openapi-typescript generates from
// openapi/openapi.json, the way a frontend would use them, and a check of it against a live server.
// Issue 10: the generated client must type-check against the document, and every time the server
// writes must parse to a `Date` equal to the one written.
//
// tools/contract-check (check "typescript") generates the types, type-checks this file with
// `tsc --strict` (tools/ts/tsconfig.json) and, when it has a server, runs the compiled program with
// ROSTER_CONTRACT_BASE, ROSTER_CONTRACT_EMAIL and ROSTER_CONTRACT_PASSWORD (the demo owner). It
// signs in, creates, lists, reads and changes members, checks every time string of every member it
// gets, and checks that a bad create answers 422 with the typed problem naming each field.

import type { components, operations, paths } from "roster-openapi";

// ---- what the document must give a frontend (checked by tsc) ---------------------------------

type Schemas = components["schemas"];
export type MemberView = Schemas["MemberView"];
export type Problem = Schemas["ProblemDetails"];
export type FieldError = Schemas["FieldError"];

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Assert<T extends true> = T;

// Times are RFC 3339 strings on the wire: required ones always there, the others null (or absent)
// until they happen.
export type TimeTypesAreStrings = [
  Assert<Equal<MemberView["created_at"], string>>,
  Assert<Equal<MemberView["updated_at"], string>>,
  Assert<Equal<MemberView["last_login_at"], string | null | undefined>>,
  Assert<Equal<MemberView["locked_until"], string | null | undefined>>,
  // A validation problem lists its fields.
  Assert<Equal<Problem["errors"], FieldError[] | null | undefined>>,
  Assert<Equal<FieldError["field"], string>>,
];

// The document's enums reach the client: a role it does not name is refused at compile time.
// @ts-expect-error "god" is not a Role
export const notARole: Schemas["CreateMemberRequest"] = { email: "a@example.com", full_name: "A", role: "god" };

// ---- a typed fetch wrapper over `paths` ------------------------------------------------------

type Method = "get" | "put" | "post" | "patch" | "delete";
/** The methods PATH has an operation for. */
type MethodOf<P extends keyof paths> = {
  [M in Method]: [NonNullable<paths[P][M]>] extends [never] ? never : M;
}[Method];
type Op<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;

/** `{ K: T }`, `{ K?: T }` when the document makes it optional, `{ K?: never }` when there is none. */
type Slot<O, K extends PropertyKey> = K extends keyof O
  ? [NonNullable<O[K]>] extends [never]
    ? { [_ in K]?: never }
    : {} extends Pick<O, K>
      ? { [_ in K]?: NonNullable<O[K]> }
      : { [_ in K]: O[K] }
  : { [_ in K]?: never };
type Params<O> = O extends { parameters: infer X } ? X : never;
type Json<C> = C extends { content: { "application/json": infer T } } ? T : never;
type BodyOf<O> = O extends { requestBody?: infer R }
  ? [NonNullable<R>] extends [never]
    ? { body?: never }
    : {} extends Pick<O, "requestBody">
      ? { body?: Json<NonNullable<R>> }
      : { body: Json<NonNullable<R>> }
  : { body?: never };
/** What a call of operation O takes: path, query and header parameters, and the JSON body. */
export type Init<O> = Slot<Params<O>, "path"> & Slot<Params<O>, "query"> & Slot<Params<O>, "header"> & BodyOf<O>;

type Responses<O> = O extends { responses: infer R } ? R : never;
type SuccessStatus = 200 | 201 | 202 | 204;
/** One variant per documented status: the JSON body of a success, the problem of a failure. */
export type Result<O> = {
  [S in keyof Responses<O>]: S extends SuccessStatus
    ? { ok: true; status: S; data: [Json<Responses<O>[S]>] extends [never] ? undefined : Json<Responses<O>[S]>; etag: string | null }
    : Responses<O>[S] extends { content: { "application/problem+json": infer T } }
      ? { ok: false; status: S; problem: T }
      : never;
}[keyof Responses<O>];

export class ApiError extends Error {}

export class RosterClient {
  token: string | null = null;

  constructor(readonly base: string) {}

  async call<P extends keyof paths, M extends MethodOf<P>>(method: M, path: P, init: Init<Op<P, M>>): Promise<Result<Op<P, M>>> {
    const { path: pathParams, query, header, body } = init as {
      path?: Record<string, string>;
      query?: Record<string, string | number | boolean | string[] | null | undefined>;
      header?: Record<string, string | undefined>;
      body?: unknown;
    };
    const url = new URL(
      this.base +
        path.replace(/\{(\w+)\}/g, (_, name: string) => {
          const value = pathParams?.[name];
          if (value === undefined) throw new ApiError(`${path}: no value for {${name}}`);
          return encodeURIComponent(value);
        }),
    );
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value === undefined || value === null) continue;
      for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(name, String(v));
    }
    const headers = new Headers({ accept: "application/json, application/problem+json" });
    for (const [name, value] of Object.entries(header ?? {})) if (value !== undefined) headers.set(name, value);
    if (this.token) headers.set("authorization", `Bearer ${this.token}`);
    if (body !== undefined) headers.set("content-type", "application/json");
    const response = await fetch(url, {
      method: method.toUpperCase(),
      headers,
      body: body === undefined ? null : JSON.stringify(body),
    });
    const text = await response.text();
    const type = response.headers.get("content-type") ?? "";
    const what = `${method.toUpperCase()} ${path}: ${response.status}`;
    if (response.ok) {
      if (text !== "" && !type.startsWith("application/json")) throw new ApiError(`${what} answered ${type}, not JSON`);
      const data: unknown = text === "" ? undefined : JSON.parse(text);
      return { ok: true, status: response.status, data, etag: response.headers.get("etag") } as Result<Op<P, M>>;
    }
    if (!type.startsWith("application/problem+json")) {
      throw new ApiError(`${what} answered ${type || "no content type"}, not application/problem+json: ${text.slice(0, 300)}`);
    }
    const problem = JSON.parse(text) as Problem;
    return { ok: false, status: response.status, problem } as Result<Op<P, M>>;
  }

  // The operations a member screen uses.

  async login(body: Schemas["LoginRequest"]) {
    const r = await this.call("post", "/api/v1/auth/login", { body });
    if (r.ok) this.token = r.data.access_token;
    return r;
  }

  listMembers(tenant_id: string, query: NonNullable<operations["list_members"]["parameters"]["query"]>) {
    return this.call("get", "/api/v1/tenants/{tenant_id}/users", { path: { tenant_id }, query });
  }

  getMember(tenant_id: string, user_id: string) {
    return this.call("get", "/api/v1/tenants/{tenant_id}/users/{user_id}", { path: { tenant_id, user_id } });
  }

  updateMember(tenant_id: string, user_id: string, body: Schemas["UpdateMemberRequest"], etag?: string) {
    return this.call("patch", "/api/v1/tenants/{tenant_id}/users/{user_id}", {
      path: { tenant_id, user_id },
      header: { "If-Match": etag },
      body,
    });
  }

  createMember(tenant_id: string, body: Schemas["CreateMemberRequest"]) {
    return this.call("post", "/api/v1/tenants/{tenant_id}/users", { path: { tenant_id }, body });
  }
}

/** A problem's message for people: its detail and each invalid field. */
export function describeProblem(p: Problem): string {
  const fields = (p.errors ?? []).map((e) => `${e.field}: ${e.message}`);
  return [`${p.status} ${p.title}: ${p.detail}`, ...fields].join("; ");
}

// ---- times as Dates ----------------------------------------------------------------------------

/** Every `format: date-time` field of a member (the check compares this with the document). */
export const MEMBER_TIME_FIELDS = ["created_at", "updated_at", "last_login_at", "locked_until"] as const satisfies readonly (keyof MemberView)[];
type TimeField = (typeof MEMBER_TIME_FIELDS)[number];

/** A member with its times as Dates. */
export type Member = Omit<MemberView, TimeField> & {
  created_at: Date;
  updated_at: Date;
  last_login_at: Date | null;
  locked_until: Date | null;
};
export type MemberKeysKept = Assert<Equal<keyof Member, keyof MemberView>>;

/** RFC 3339 in UTC, as the server writes it: seconds, any fraction, `Z`. */
const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

export function parseTime(s: string): Date {
  const d = new Date(s);
  if (!RFC3339_UTC.test(s) || Number.isNaN(d.getTime())) throw new ApiError(`not an RFC 3339 UTC time: ${JSON.stringify(s)}`);
  return d;
}

const parseOptionalTime = (s: string | null | undefined): Date | null => (s == null ? null : parseTime(s));

export function toMember(m: MemberView): Member {
  return {
    ...m,
    created_at: parseTime(m.created_at),
    updated_at: parseTime(m.updated_at),
    last_login_at: parseOptionalTime(m.last_login_at),
    locked_until: parseOptionalTime(m.locked_until),
  };
}

// ---- the check against a live server -----------------------------------------------------------

// Node's, declared here so that the program needs no @types/node (a frontend has none).
declare const process: { env: Record<string, string | undefined>; exitCode?: number | string | undefined };

const failures: string[] = [];
let timesChecked = 0;
let optionalTimesChecked = 0;

function fail(message: string): void {
  failures.push(message);
  console.log(`FAIL ${message}`);
}

/** The time the string names, to the millisecond, as `toISOString` writes it. */
function toMillis(s: string): string {
  const m = /^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d+))?Z$/.exec(s);
  return m ? `${m[1]}.${(m[2] ?? "").padEnd(3, "0").slice(0, 3)}Z` : s;
}

/** Checks every time string of member M (from WHERE) and that it converts with toMember. */
function checkTimes(where: string, m: MemberView): Member | null {
  for (const field of MEMBER_TIME_FIELDS) {
    const s: unknown = m[field];
    if (s === null || s === undefined) {
      if (field === "created_at" || field === "updated_at") fail(`${where}: ${field} is missing`);
      continue;
    }
    if (typeof s !== "string") {
      fail(`${where}: ${field} is ${JSON.stringify(s)}, not a string`);
      continue;
    }
    timesChecked++;
    if (field === "last_login_at" || field === "locked_until") optionalTimesChecked++;
    const d = new Date(s);
    if (!s.endsWith("Z")) fail(`${where}: ${field} ${JSON.stringify(s)} does not end with Z`);
    if (Number.isNaN(d.getTime())) fail(`${where}: ${field} ${JSON.stringify(s)} is not a valid Date`);
    else if (d.toISOString() !== toMillis(s)) {
      fail(`${where}: ${field} ${JSON.stringify(s)} parses to ${d.toISOString()}, not ${toMillis(s)}`);
    }
  }
  try {
    const member = toMember(m);
    for (const field of MEMBER_TIME_FIELDS) {
      const s = m[field];
      if (s != null && member[field]?.getTime() !== new Date(s).getTime()) fail(`${where}: toMember changed ${field}`);
    }
    return member;
  } catch (e) {
    fail(`${where}: toMember: ${(e as Error).message}`);
    return null;
  }
}

/** The names of MemberView's `format: date-time` properties in the document the server serves. */
async function documentTimeFields(base: string): Promise<string[]> {
  const response = await fetch(`${base}/api-docs/openapi.json`);
  if (!response.ok) throw new ApiError(`GET /api-docs/openapi.json: ${response.status}`);
  type Schema = { format?: string; properties?: Record<string, Schema> };
  const doc = (await response.json()) as { components?: { schemas?: Record<string, Schema> } };
  const properties = doc.components?.schemas?.["MemberView"]?.properties ?? {};
  return Object.keys(properties)
    .filter((name) => properties[name]?.format === "date-time")
    .sort();
}

async function main(): Promise<void> {
  const base = process.env["ROSTER_CONTRACT_BASE"];
  const email = process.env["ROSTER_CONTRACT_EMAIL"];
  const password = process.env["ROSTER_CONTRACT_PASSWORD"];
  if (!base || !email || !password) {
    throw new ApiError("set ROSTER_CONTRACT_BASE, ROSTER_CONTRACT_EMAIL and ROSTER_CONTRACT_PASSWORD");
  }

  const documented = await documentTimeFields(base);
  const converted = [...MEMBER_TIME_FIELDS].sort();
  if (documented.join() !== converted.join()) {
    fail(`MemberView's date-time fields are [${documented}] in the document, toMember converts [${converted}]`);
  }

  const client = new RosterClient(base);
  const login = await client.login({ email, password });
  if (!login.ok) throw new ApiError(`sign-in: ${describeProblem(login.problem)}`);
  const tenant = login.data.tenant_id;
  if (!tenant) throw new ApiError("sign-in gave an identity-only token (no tenant_id)");
  console.log(`signed in as ${email} (tenant ${tenant}, token for ${login.data.expires_in} s)`);

  // Create a member, so that there is one to read and change besides the owner.
  const created = await client.createMember(tenant, {
    email: `typescript-check-${Date.now()}@example.com`,
    full_name: "TypeScript Check",
    role: "viewer",
    job_title: "Checker",
  });
  if (!created.ok) throw new ApiError(`create member: ${describeProblem(created.problem)}`);
  if (created.status !== 201) throw new ApiError(`create member: ${created.status}, not 201 (an invitation instead?)`);
  const createdMember = checkTimes("POST .../users (201)", created.data);
  console.log(`created ${created.data.email} (${created.data.id}), created_at ${created.data.created_at}`);

  // List everyone, page by page, with query parameters.
  let listed = 0;
  const members: MemberView[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 50; page++) {
    const r = await client.listMembers(tenant, {
      status: "all",
      sort: "-created_at",
      created_after: "2000-01-01T00:00:00Z",
      limit: 100,
      ...(cursor ? { cursor } : {}),
    });
    if (!r.ok) throw new ApiError(`list members: ${describeProblem(r.problem)}`);
    for (const m of r.data.items) checkTimes(`GET .../users item ${m.email}`, m);
    members.push(...r.data.items);
    listed += r.data.items.length;
    if (!r.data.next_cursor) break;
    cursor = r.data.next_cursor;
  }
  console.log(`listed ${listed} members`);
  if (!members.some((m) => m.id === created.data.id)) fail("GET .../users does not list the member just created");

  // Read a few (the new member and the owner among them).
  const toRead = [created.data.id, ...members.filter((m) => m.id !== created.data.id).slice(0, 4).map((m) => m.id)];
  let etag: string | null = null;
  for (const id of toRead) {
    const r = await client.getMember(tenant, id);
    if (!r.ok) {
      fail(`GET .../users/${id}: ${describeProblem(r.problem)}`);
      continue;
    }
    const member = checkTimes(`GET .../users/${id}`, r.data);
    if (id === created.data.id) {
      etag = r.etag;
      if (createdMember && member && member.created_at.getTime() !== createdMember.created_at.getTime()) {
        fail(`GET .../users/${id}: created_at ${r.data.created_at}, but POST answered ${created.data.created_at}`);
      }
    }
  }
  console.log(`read ${toRead.length} members`);
  if (!etag) fail(`GET .../users/${created.data.id}: no ETag`);

  // Change one, with the ETag read.
  const updated = await client.updateMember(tenant, created.data.id, { job_title: "Senior Checker" }, etag ?? undefined);
  if (!updated.ok) {
    fail(`PATCH .../users/${created.data.id}: ${describeProblem(updated.problem)}`);
  } else {
    const member = checkTimes(`PATCH .../users/${created.data.id}`, updated.data);
    if (updated.data.job_title !== "Senior Checker") fail(`PATCH: job_title is ${JSON.stringify(updated.data.job_title)}`);
    if (updated.data.version <= created.data.version) fail(`PATCH: version ${updated.data.version} after ${created.data.version}`);
    if (member && createdMember && member.updated_at < createdMember.updated_at) {
      fail(`PATCH: updated_at ${updated.data.updated_at} is before ${created.data.updated_at}`);
    }
    console.log(`changed ${updated.data.email}: version ${updated.data.version}, updated_at ${updated.data.updated_at}`);
  }

  if (optionalTimesChecked === 0) fail("no member had a last_login_at or locked_until to check (the owner signed in)");
  console.log(`checked ${timesChecked} time strings (${optionalTimesChecked} of last_login_at or locked_until): Z, a valid Date, the same to the millisecond`);

  // A bad create: 422, the typed problem naming each field.
  const bad = { email: "bad", full_name: "", role: "god" } as unknown as Schemas["CreateMemberRequest"];
  const rejected = await client.createMember(tenant, bad);
  if (rejected.ok) {
    fail(`POST .../users with ${JSON.stringify(bad)}: ${rejected.status}, not 422`);
  } else if (rejected.status !== 422) {
    fail(`POST .../users with ${JSON.stringify(bad)}: ${describeProblem(rejected.problem)}, not 422`);
  } else {
    const problem: Problem = rejected.problem;
    const errors: FieldError[] | null | undefined = problem.errors;
    if (problem.status !== 422) fail(`422 problem: status ${problem.status}`);
    if (!Array.isArray(errors)) {
      fail(`422 problem: errors is ${JSON.stringify(errors)}, not an array`);
    } else {
      const named = errors.map((e) => e.field);
      for (const field of ["email", "full_name", "role"]) {
        if (!named.includes(field)) fail(`422 problem: errors does not name ${field} (${JSON.stringify(errors)})`);
      }
      for (const e of errors) {
        if (typeof e.field !== "string" || typeof e.message !== "string") fail(`422 problem: malformed error ${JSON.stringify(e)}`);
      }
      console.log(`bad create: ${describeProblem(problem)}`);
    }
  }
}

main().then(
  () => {
    if (failures.length > 0) {
      console.log(`typescript client check: ${failures.length} failures`);
      process.exitCode = 1;
    } else {
      console.log("typescript client check: all passed");
    }
  },
  (e: unknown) => {
    console.log(`typescript client check: ${e instanceof Error ? e.message : String(e)}`);
    for (const f of failures) console.log(`  earlier: ${f}`);
    process.exitCode = 1;
  },
);
