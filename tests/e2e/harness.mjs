// Loads the real minapp-sdk browser build in headless Chromium against a running firehook and
// runs the SDK calls an app makes. Prints one JSON line of results on stdout.
//
// env: FIREHOOK_URL (the API), CLIENT_ID, PAGE_PORT (this page's port; firehook's CORS
// origins must allow http://127.0.0.1:PAGE_PORT), CHROMIUM (default /usr/bin/chromium).
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const files = {
  "/": ["index.html", "text/html"],
  "/minapp-sdk/web.js": ["node_modules/minapp-sdk/lib/web.js", "text/javascript"],
};

const server = createServer(async (req, res) => {
  const entry = files[req.url];
  if (!entry) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { "Content-Type": entry[1] });
  res.end(await readFile(join(here, entry[0])));
});
await new Promise((ok) => server.listen(Number(process.env.PAGE_PORT), "127.0.0.1", ok));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const requests = [];
try {
  const page = await browser.newPage();
  page.on("request", (r) => {
    if (r.url().startsWith(process.env.FIREHOOK_URL)) requests.push(`${r.method()} ${new URL(r.url()).pathname}`);
  });
  page.on("console", (m) => process.stderr.write(`console: ${m.text()}\n`));
  await page.goto(`http://127.0.0.1:${process.env.PAGE_PORT}/`);
  const results = await page.evaluate(
    async ({ host, clientID }) => {
      const out = {};
      const settle = async (name, fn) => {
        try {
          out[name] = { ok: true, value: await fn() };
        } catch (e) {
          out[name] = { ok: false, code: e.code, message: e.message };
        }
      };
      BaaS.init(clientID, { host });
      const username = `allen-${Date.now()}`;
      await settle("register", async () => {
        const user = await BaaS.auth.register({ username, password: "s3cret-pass" });
        return { id: user.id, username: user.get("_username") };
      });
      await settle("invokeSync", () => BaaS.invoke("helloWorld", { name: "allen" }));
      await settle("invokeAsync", () => BaaS.invoke("helloWorld", { name: "later" }, false));
      await settle("invokeUnknown", () => BaaS.invoke("noSuchFunction", {}));
      await settle("logout", async () => {
        await BaaS.auth.logout();
        return "ok";
      });
      await settle("login", async () => {
        const user = await BaaS.auth.login({ username, password: "s3cret-pass" });
        return { id: user.id };
      });
      await settle("invokeAfterLogin", () => BaaS.invoke("helloWorld", { name: "again" }));
      await BaaS.auth.logout();
      await settle("anonymousLogin", async () => {
        const user = await BaaS.auth.anonymousLogin();
        return { id: user.id, anonymous: user._anonymous };
      });
      await settle("invokeAnonymous", () => BaaS.invoke("helloWorld", { name: "anon" }));
      return out;
    },
    { host: process.env.FIREHOOK_URL, clientID: process.env.CLIENT_ID },
  );
  process.stdout.write(JSON.stringify({ results, requests }) + "\n");
} finally {
  await browser.close();
  server.close();
}
