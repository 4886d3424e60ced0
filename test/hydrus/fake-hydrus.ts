// A local stand-in for the Hydrus Client API, exactly the endpoints `hydrus` uses, with the request and
// response shapes, header and errors of Hydrus' own Client API help
// (hydrusnetwork.github.io/hydrus/developer_api.html, client API 95, Hydrus v682): the
// Hydrus-Client-API-Access-Key header (401 without, 403 for a wrong key or a missing permission), GET
// parameters as percent-encoded JSON, `services_v2`, `file_ids`, `metadata` with `storage_tags` by
// status ("0" current, "1" pending, "2" deleted), files by id (404 once deleted), and
// /add_tags/add_tags with service_keys_to_actions_to_tags and override_previously_deleted_mappings.
// It records every request, can drop the connection of chosen requests, and can lie in its answers.
import fastify, { type FastifyInstance } from 'fastify';

export const MY_TAGS = '6c6f63616c2074616773';
export const PTR = 'aa0424b501237041dab0308c02c35454d377eebd74cfbc5b9d7b3e16cc2193e9';
export const MY_FILES = '6c6f63616c2066696c6573';

export interface FakeFile {
  id: number;
  hash: string;
  mime: string;
  bytes: Buffer;
  /** Storage tags per service key, by status. */
  tags: Record<string, Record<string, string[]>>;
  deleted?: boolean;
}

export interface FakeHydrus {
  app: FastifyInstance;
  url: string;
  files: FakeFile[];
  searches: unknown[];
  adds: Record<string, unknown>[];
  /** Endpoints whose next N requests have their connection dropped. */
  drop: Map<string, number>;
  /** The key's basic_permissions. */
  permissions: number[];
  /** Endpoints whose JSON answers are replaced by what these return (a server that lies). */
  lie: Map<string, (answer: Record<string, unknown>) => unknown>;
}

export async function fakeHydrus(key: string, files: FakeFile[], services = defaultServices()): Promise<FakeHydrus> {
  const app = fastify({ logger: false });
  const state: FakeHydrus = {
    app,
    url: '',
    files,
    searches: [],
    adds: [],
    drop: new Map(),
    permissions: [0, 1, 2, 3],
    lie: new Map(),
  };
  const versions = { version: 95, hydrus_version: 682 };
  const json = (raw: unknown): unknown => JSON.parse(String(raw));
  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0]!;
    const n = state.drop.get(path) ?? 0;
    if (n > 0) {
      state.drop.set(path, n - 1);
      req.raw.socket.destroy();
      return reply.hijack();
    }
    const given = req.headers['hydrus-client-api-access-key'];
    if (given === undefined) return reply.code(401).send('Missing access key!');
    if (given !== key) return reply.code(403).send('Did not find an entry for that access key!');
  });
  app.addHook('onSend', async (req, _reply, payload) => {
    const lie = state.lie.get(req.url.split('?')[0]!);
    if (!lie || typeof payload !== 'string') return payload;
    const told = lie(JSON.parse(payload) as Record<string, unknown>);
    return typeof told === 'string' ? told : JSON.stringify(told);
  });
  const need =
    (permission: number) => async (_req: unknown, reply: { code: (n: number) => { send: (b: string) => void } }) => {
      if (!state.permissions.includes(permission))
        reply.code(403).send('You do not have permission to do this request!');
    };
  app.get('/verify_access_key', async () => ({
    name: 'tagger',
    permits_everything: false,
    basic_permissions: state.permissions,
    human_description: 'API Permissions (tagger)',
    ...versions,
  }));
  app.get('/get_services', async () => ({
    services: Object.fromEntries(
      services.map((s) => [s.service_key, { name: s.name, type: s.type, type_pretty: s.type_pretty }]),
    ),
    services_v2: services,
    ...versions,
  }));
  app.get('/get_files/search_files', { preHandler: need(3) }, async (req) => {
    const tags = json((req.query as { tags: string }).tags) as string[];
    state.searches.push(tags);
    // The predicates are recorded; of them, only a negated tag is applied here (as over all known tags).
    const without = tags.filter((t) => t.startsWith('-')).map((t) => t.slice(1));
    const has = (f: FakeFile, t: string): boolean =>
      Object.values(f.tags).some((s) => (s['0'] ?? []).includes(t) || (s['1'] ?? []).includes(t));
    return { file_ids: state.files.filter((f) => !without.some((t) => has(f, t))).map((f) => f.id), ...versions };
  });
  app.get('/get_files/file_metadata', { preHandler: need(3) }, async (req, reply) => {
    const ids = json((req.query as { file_ids: string }).file_ids) as number[];
    const found = ids.map((id) => state.files.find((f) => f.id === id));
    if (found.some((f) => !f)) return reply.code(404).send('One or more of those file identifiers was missing!');
    return {
      metadata: found.map((f) => ({
        file_id: f!.id,
        hash: f!.hash,
        mime: f!.mime,
        tags: Object.fromEntries(Object.entries(f!.tags).map(([k, s]) => [k, { storage_tags: s, display_tags: s }])),
      })),
      ...versions,
    };
  });
  app.get('/get_files/file', { preHandler: need(3) }, async (req, reply) => {
    const id = Number((req.query as { file_id: string }).file_id);
    const f = state.files.find((x) => x.id === id);
    if (!f || f.deleted) return reply.code(404).send(`File ${id} not found!`);
    return reply.type(f.mime).send(f.bytes);
  });
  app.post('/add_tags/add_tags', { preHandler: need(2) }, async (req) => {
    const body = req.body as Record<string, unknown>;
    state.adds.push(body);
    const f = state.files.find((x) => x.hash === body.hash)!;
    const actions = body.service_keys_to_actions_to_tags as Record<string, Record<string, string[]>>;
    for (const [service, byAction] of Object.entries(actions))
      for (const [action, tags] of Object.entries(byAction)) {
        const s = (f.tags[service] ??= {});
        const deleted = new Set(s['2'] ?? []);
        // add (0) to current, pend (2) to pending; a deleted mapping stays deleted unless overridden
        const into = action === '0' ? '0' : '1';
        for (const t of tags)
          if (body.override_previously_deleted_mappings !== false || !deleted.has(t))
            if (!(s[into] ??= []).includes(t)) s[into]!.push(t);
      }
    return '';
  });
  state.url = await app.listen({ host: '127.0.0.1', port: 0 });
  return state;
}

export function defaultServices() {
  return [
    { name: 'my tags', service_key: MY_TAGS, type: 5, type_pretty: 'local tag domain' },
    { name: 'public tag repository', service_key: PTR, type: 0, type_pretty: 'hydrus tag repository' },
    { name: 'my files', service_key: MY_FILES, type: 2, type_pretty: 'local file domain' },
    {
      name: 'all known tags',
      service_key: '616c6c206b6e6f776e2074616773',
      type: 10,
      type_pretty: 'virtual combined tag domain',
    },
  ];
}
