import { fileURLToPath } from "node:url";
import { svelte } from "@sveltejs/vite-plugin-svelte";
import { defineConfig } from "vite";

const repoRoot = fileURLToPath(new URL(".", import.meta.url));
const clientRoot = fileURLToPath(new URL("./client", import.meta.url));
const apiTarget = "http://localhost:3000";

/** Build and dev-serve the Svelte client. Tests use vitest.config.ts, not this file. */
export default defineConfig({
  root: clientRoot,
  plugins: [svelte({ configFile: fileURLToPath(new URL("./client/svelte.config.js", import.meta.url)) })],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // CSP forbids data: scripts and inline styles; keep every asset a real file.
    assetsInlineLimit: 0,
    cssCodeSplit: false,
  },
  server: {
    // The client imports ../shared; allow the dev server to read the whole repository.
    fs: { allow: [repoRoot] },
    proxy: {
      "/api": { target: apiTarget, changeOrigin: false },
      "/healthz": apiTarget,
      "/readyz": apiTarget,
    },
  },
});
