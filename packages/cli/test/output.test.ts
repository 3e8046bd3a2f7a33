import { describe, expect, it } from "vitest";
import { formatLabels, TabWriter, tabwrite } from "../src/output.js";

describe("tabwrite (Go text/tabwriter, flags 0)", () => {
  it("pads tab-terminated cells to the widest cell plus padding", () => {
    const text = "NAME\tLABELS\t\nbar\t\t\nfoo\tb=true,c=3\t\n";
    // captured from `ctr namespaces ls` (minwidth 1, padding 1): trailing cells are padded too
    expect(tabwrite(text, { minWidth: 1, padding: 1 })).toBe("NAME LABELS     \nbar             \nfoo  b=true,c=3 \n");
  });

  it("matches ctr plugins ls (minwidth 4, padding 4)", () => {
    const w = new TabWriter({ minWidth: 4, padding: 4 });
    w.row("TYPE", "ID", "PLATFORMS", "STATUS");
    w.row("io.containerd.content.v1", "content", "-", "ok");
    w.row("io.containerd.snapshotter.v1", "aufs", "linux/amd64", "skip");
    expect(w.flush()).toBe(
      [
        "TYPE                            ID         PLATFORMS      STATUS    ",
        "io.containerd.content.v1        content    -              ok        ",
        "io.containerd.snapshotter.v1    aufs       linux/amd64    skip      ",
        "",
      ].join("\n"),
    );
  });

  it("ignores the last, unterminated cell of a line for alignment", () => {
    expect(tabwrite("a\tlong last cell\nbbbb\tx\n", { padding: 1 })).toBe("a    long last cell\nbbbb x\n");
  });

  it("ends a column block at a line without that column", () => {
    const text = "a\tb\t\naaaaaa\tb\t\nsingle line\nc\td\t\n";
    expect(tabwrite(text, { padding: 1 })).toBe("a      b \naaaaaa b \nsingle line\nc d \n");
  });

  it("aligns nested columns per block, as Go does for ctr's --detailed output", () => {
    const text = "Type:\t x\nExports:\t\n\t root \t /a\n\t longer \t /b\n";
    expect(tabwrite(text, { minWidth: 4, padding: 4 })).toBe(
      [
        `Type:${" ".repeat(7)} x`,
        "Exports:    ",
        `${" ".repeat(12)} root ${" ".repeat(6)} /a`,
        `${" ".repeat(12)} longer ${" ".repeat(4)} /b`,
        "",
      ].join("\n"),
    );
  });

  it("counts code points, not UTF-16 units", () => {
    expect(tabwrite("é\tx\t\nab\ty\t\n", { padding: 1 })).toBe("é  x \nab y \n");
  });

  it("respects minWidth and keeps text without newline at the end", () => {
    expect(tabwrite("a\tb", { minWidth: 5, padding: 1 })).toBe("a    b");
  });
});

describe("formatLabels", () => {
  it("joins sorted k=v pairs with commas", () => {
    expect(formatLabels({ z: "1", a: "x", "containerd.io/gc.root": "t" })).toBe("a=x,containerd.io/gc.root=t,z=1");
  });
  it("is empty without labels", () => {
    expect(formatLabels({})).toBe("");
  });
  it("sorts in byte order like Go (uppercase before lowercase)", () => {
    expect(formatLabels({ b: "1", B: "2", a: "3" })).toBe("B=2,a=3,b=1");
  });
});
