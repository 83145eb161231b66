// Headless Chromium for the interop and deploy tests: Debian's /usr/bin/chromium driven by
// playwright-core (which never downloads a browser), with the flags every test uses and a fresh
// --user-data-dir. A test certificate is trusted through --ignore-certificate-errors-spki-list
// (the SHA-256 of its public key, honoured together with --user-data-dir), so any other
// certificate error still fails.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

/** Launches Chromium trusting `spki`; returns { page, close } (close also removes the profile). */
export async function launchChromium(spki) {
  const profile = mkdtempSync(join(tmpdir(), "herald-chromium-"));
  let context;
  const close = async () => {
    if (context) await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  };
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: "/usr/bin/chromium",
      headless: true,
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        `--ignore-certificate-errors-spki-list=${spki}`,
      ],
    });
    const page = context.pages()[0] ?? (await context.newPage());
    return { page, close };
  } catch (e) {
    await close();
    throw e;
  }
}
