export { createDiffClient } from "./client.js";
