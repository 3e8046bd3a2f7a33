import { defineConfig } from "vitest/config";

const integration = process.env.BERTH_INTEGRATION === "1";

// Integration tests need root, real mounts and real peers; they run only when asked (CI asks).
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: integration ? ["**/node_modules/**"] : ["**/node_modules/**", "**/*.integration.test.ts"],
    passWithNoTests: true,
    testTimeout: integration ? 120_000 : 15_000,
    hookTimeout: integration ? 120_000 : 15_000,
  },
});
