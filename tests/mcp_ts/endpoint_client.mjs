// A TypeScript SDK client of one named endpoint of `tooldeck mcp serve --http` (tests/test_mcp_endpoints.py):
// list, a call that leaves an argument to the endpoint's defaults, and a call of a tool the endpoint does not serve.
// Usage: node endpoint_client.mjs SDK_DIR URL
import path from "node:path";
import { pathToFileURL } from "node:url";

const [sdkDir, url] = process.argv.slice(2);
const sdk = (rel) => import(pathToFileURL(path.join(sdkDir, "node_modules/@modelcontextprotocol/sdk/dist/esm", rel)).href);
const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
const say = (step, data) => process.stdout.write(JSON.stringify({ step, ...data }) + "\n");

const client = new Client({ name: "ts-endpoint-test", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
const listed = await client.listTools();
const echo = listed.tools.find((t) => t.name === "echo");
say("list", { names: listed.tools.map((t) => t.name).sort(), echoTitle: echo?.title ?? null,
              echoRequired: echo?.inputSchema?.required ?? [] });
for (const [step, name, args] of [["defaulted", "echo", {}], ["hidden", "shout", { text: "x" }]]) {
  try {
    const result = await client.callTool({ name, arguments: args });
    say(step, { ok: true, isError: Boolean(result.isError), structured: result.structuredContent ?? null });
  } catch (error) {
    say(step, { ok: false, code: error.code ?? null, message: String(error.message ?? error) });
  }
}
await client.close();
say("closed", {});
process.exit(0);
