export { createContentClient, WRITE_CHUNK_SIZE } from "./client.js";
