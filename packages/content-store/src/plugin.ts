import { definePlugin, pluginType } from "@berth/plugin";
import type { ContentStore } from "./content.js";
import { createLocalStore } from "./local/store.js";

/** The content store plugin type (containerd's `io.containerd.content.v1`). */
export const ContentPlugin = pluginType<ContentStore>("io.containerd.content.v1");

/** The local store at `<root>/io.containerd.content.v1.content` (registration only; see createLocalStore). */
export const localContentPlugin = definePlugin({
  type: ContentPlugin,
  id: "content",
  init(ic) {
    const root = ic.rootDir;
    ic.meta.exports.root = root;
    return createLocalStore({ root });
  },
});
