// A client of `tooldeck mcp serve` built on the official TypeScript SDK (what Claude Desktop, VS Code
// and most IDE clients use), driven by tests/test_mcp_typescript.py. One JSON line per step on stdout.
// Usage: node client.mjs SDK_DIR WORKSPACE stdio COMMAND ARGS_JSON | node client.mjs SDK_DIR WORKSPACE http URL
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [sdkDir, workspace, transportKind, target, argsJson] = process.argv.slice(2);
const sdk = (rel) => import(pathToFileURL(path.join(sdkDir, "node_modules/@modelcontextprotocol/sdk/dist/esm", rel)).href);
const { Client } = await sdk("client/index.js");
const { ToolListChangedNotificationSchema } = await sdk("types.js");
const say = (step, data) => process.stdout.write(JSON.stringify({ step, ...data }) + "\n");

let transport;
if (transportKind === "stdio") {
  const { StdioClientTransport } = await sdk("client/stdio.js");
  transport = new StdioClientTransport({ command: target, args: JSON.parse(argsJson), env: process.env, stderr: "ignore" });
} else {
  const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
  transport = new StreamableHTTPClientTransport(new URL(target));
}
const client = new Client({ name: "ts-sdk-test", version: "1.0.0" });
let changed = 0;
client.setNotificationHandler(ToolListChangedNotificationSchema, () => { changed += 1; });
await client.connect(transport);
// what the SDK's own listChanged auto-refresh goes by: it does nothing for a server that does not announce it
say("capabilities", { toolsListChanged: client.getServerCapabilities()?.tools?.listChanged === true });

async function call(step, name, args, options) {
  try {
    const result = await client.callTool({ name, arguments: args }, undefined, options);
    say(step, { ok: true, isError: Boolean(result.isError), text: result.content?.[0]?.text ?? null,
                structured: result.structuredContent ?? null, meta: result._meta ?? null });
  } catch (error) {
    say(step, { ok: false, code: error.code ?? null, message: String(error.message ?? error) });
  }
}

const listed = await client.listTools();
say("list", { names: listed.tools.map((t) => t.name).sort(),
              withOutputSchema: listed.tools.filter((t) => t.outputSchema).map((t) => t.name).sort() });
await call("call", "echo", { text: "from typescript" });
await call("buffer_error", "buffer", { operation: "flush", buffer_id: "nosuch" });
await call("tool_error", "picky", { text: "x" });
await call("bad_argument", "echo", { text: 5 });
await call("cancel", "sleepy", { seconds: 30, pid_file: `ts-${transportKind}.pid` }, { timeout: 1500 });
// with onprogress the SDK sends a progressToken: over HTTP that request is answered as an event stream
let ticks = 0;
await call("progress", "sleepy", { seconds: 1.6, pid_file: `ts-progress-${transportKind}.pid` },
           { onprogress: () => { ticks += 1; }, resetTimeoutOnProgress: true });
say("progress_ticks", { ticks });

fs.writeFileSync(path.join(workspace, "tools", `added_${transportKind}.py`), "def run(data):\n    return {'added': True}\n");
fs.writeFileSync(path.join(workspace, "tools", `added_${transportKind}.yaml`),
                 `name: added_${transportKind}\ntype: python\nversion: 1.0.0\nentry: added_${transportKind}.py:run\ndescription: added later\n`);
const deadline = Date.now() + 30000;
while (changed === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
const after = changed ? (await client.listTools()).tools.map((t) => t.name) : [];
say("list_changed", { notified: changed > 0, added: after.includes(`added_${transportKind}`) });
await client.close();
say("closed", {});
process.exit(0);
