// A TypeScript SDK client of a `tool_search` endpoint of `tooldeck mcp serve --http` (tests/test_mcp_search.py):
// list, search (its structured content checked by the SDK against search_tools' output schema), list_changed,
// list again, a bad argument.
// Usage: node search_client.mjs SDK_DIR URL QUERY
import path from "node:path";
import { pathToFileURL } from "node:url";

const [sdkDir, url, query] = process.argv.slice(2);
const sdk = (rel) => import(pathToFileURL(path.join(sdkDir, "node_modules/@modelcontextprotocol/sdk/dist/esm", rel)).href);
const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
const { ToolListChangedNotificationSchema } = await sdk("types.js");
const say = (step, data) => process.stdout.write(JSON.stringify({ step, ...data }) + "\n");
const names = async () => (await client.listTools()).tools.map((t) => t.name);

const client = new Client({ name: "ts-search-test", version: "1.0.0" });
let changed = 0;
client.setNotificationHandler(ToolListChangedNotificationSchema, () => { changed += 1; });
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
say("list", { names: await names() });
for (const [step, args] of [["search", { query, limit: 3 }], ["bad_limit", { query, limit: 0 }]]) {
  try {
    const result = await client.callTool({ name: "search_tools", arguments: args });
    say(step, { ok: true, isError: Boolean(result.isError), found: (result.structuredContent?.tools ?? []).map((t) => t.name),
                text: result.content?.[0]?.text ?? "" });
  } catch (error) {
    say(step, { ok: false, code: error.code ?? null, message: String(error.message ?? error) });
  }
  if (step === "search") {
    const deadline = Date.now() + 20000;
    while (changed === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    say("list_changed", { notified: changed, names: await names() });
  }
}
await client.close();
say("closed", {});
process.exit(0);
