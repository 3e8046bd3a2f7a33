/** The progress bar of `content ingest` on a terminal (cli-progress): bytes done, total, average speed. */
import type { IngestProgress } from "./ingest.js";

const IEC = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** `12.5 MiB`, `512 B`: binary units with one decimal. */
export function formatBytes(n: number): string {
  let i = 0;
  let v = n;
  while (v >= 1024 && i < IEC.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${IEC[i]}`;
}

/** A progress bar on `tty` (stderr); redrawn at most 10 times a second, left on screen when done. */
export async function terminalProgress(tty: NodeJS.WriteStream, label: string): Promise<IngestProgress> {
  const mod = await import("cli-progress");
  const { SingleBar, Presets } = (mod as unknown as { default?: typeof mod }).default ?? mod;
  let bar: InstanceType<typeof SingleBar> | undefined;
  let startedAt = 0;
  let startOffset = 0;
  let known = false;
  const payload = (offset: number) => {
    const seconds = (performance.now() - startedAt) / 1000;
    const speed = seconds > 0 ? (offset - startOffset) / seconds : 0;
    return { done: formatBytes(offset), speed: `${formatBytes(Math.round(speed))}/s` };
  };
  return {
    start(offset, total) {
      known = total !== undefined && total > 0;
      startedAt = performance.now();
      startOffset = offset;
      const format = known ? `${label} [{bar}] {percentage}% | {done} / {size} | {speed}` : `${label} {done} | {speed}`;
      bar = new SingleBar(
        { stream: tty, format, hideCursor: true, fps: 10, barsize: 30, etaBuffer: 50, noTTYOutput: false },
        Presets.shades_classic,
      );
      bar.start(known ? (total as number) : 1, known ? offset : 0, {
        ...payload(offset),
        size: known ? formatBytes(total as number) : "",
      });
    },
    update(offset) {
      bar?.update(known ? offset : 0, payload(offset));
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}
