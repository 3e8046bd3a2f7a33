import { defineProject, mergeConfig } from "vitest/config";
import shared from "../vitest.shared.js";

// One daemon at a time: files share ports and CPU, and each test owns its daemons.
export default mergeConfig(shared, defineProject({ test: { name: "integration", fileParallelism: false } }));
