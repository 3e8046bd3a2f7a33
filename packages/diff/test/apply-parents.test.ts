// applyLayer's `parents`: directories a layer creates only implicitly take their attributes from the lower dirs
// (containerd's WithParents), so an overlay upper dir does not change a directory's mode in the merged view.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { applyLayer } from "../src/index.js";
import { chunks, makeTar } from "./helpers.js";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "berth-parents-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

it("copies mode and times of an implicit parent from the first lower that has it; defaults otherwise", async () => {
  const top = path.join(dir, "top");
  const bottom = path.join(dir, "bottom");
  const upper = path.join(dir, "upper");
  for (const d of [top, bottom, upper]) fs.mkdirSync(d);
  fs.mkdirSync(path.join(bottom, "opt/app"), { recursive: true });
  fs.chmodSync(path.join(bottom, "opt"), 0o710);
  fs.chmodSync(path.join(bottom, "opt/app"), 0o700);
  fs.utimesSync(path.join(bottom, "opt"), 1_600_000_000, 1_600_000_000);
  fs.mkdirSync(path.join(top, "opt"));
  fs.chmodSync(path.join(top, "opt"), 0o750); // the nearest lower wins
  const tar = await makeTar([
    { name: "opt/app/new", body: "x" },
    { name: "fresh/dir/file", body: "y" },
  ]);
  await applyLayer(upper, chunks(tar), { whiteouts: "overlay", parents: [top, bottom] });
  const mode = (p: string) => fs.statSync(path.join(upper, p)).mode & 0o7777;
  expect(mode("opt")).toBe(0o750);
  expect(mode("opt/app")).toBe(0o700);
  expect(mode("fresh")).toBe(0o755);
  expect(mode("fresh/dir")).toBe(0o755);
  expect(fs.readFileSync(path.join(upper, "opt/app/new"), "utf8")).toBe("x");
});
