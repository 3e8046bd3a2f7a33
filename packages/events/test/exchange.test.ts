import { isInvalidArgument, isResourceExhausted } from "@berth/errdefs";
import { describe, expect, it } from "vitest";
import { Exchange, envelopeMatcher } from "../src/index.js";

const ev = (s: string) => ({ typeUrl: "test.Event", value: new TextEncoder().encode(s) });

async function take<T>(it: AsyncIterable<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) {
    out.push(x);
    if (out.length === n) break;
  }
  return out;
}

describe("Exchange", () => {
  it("delivers to every subscriber in order, filtered", async () => {
    const ex = new Exchange();
    const all = ex.subscribe();
    const exits = ex.subscribe({ match: envelopeMatcher(['topic=="/tasks/exit"']) });
    ex.publish("default", "/tasks/start", ev("1"));
    ex.publish("default", "/tasks/exit", ev("2"));
    ex.publish("other", "/tasks/exit", ev("3"));
    expect((await take(all, 3)).map((e) => e.topic)).toEqual(["/tasks/start", "/tasks/exit", "/tasks/exit"]);
    expect((await take(exits, 2)).map((e) => e.namespace)).toEqual(["default", "other"]);
    expect(ex.subscriberCount).toBe(0);
  });

  it("validates namespace and topic", () => {
    const ex = new Exchange();
    for (const [ns, topic] of [
      ["A/B", "/x"],
      ["default", "no-slash"],
      ["default", "/bad//component"],
    ] as const) {
      let err: unknown;
      try {
        ex.publish(ns, topic, ev(""));
      } catch (e) {
        err = e;
      }
      expect(isInvalidArgument(err), `${ns} ${topic}`).toBe(true);
    }
    expect(() => envelopeMatcher(["topic=="])).toThrow(/expected value/);
    expect(() => envelopeMatcher(['topic=="unterminated'])).toThrow();
  });

  it("ends subscriptions on abort and on close", async () => {
    const ex = new Exchange();
    const ac = new AbortController();
    const sub = ex.subscribe({ signal: ac.signal });
    const done = take(sub, 10);
    ac.abort();
    expect(await done).toEqual([]);
    const sub2 = ex.subscribe();
    const done2 = take(sub2, 10);
    ex.close();
    expect(await done2).toEqual([]);
  });

  it("drops a subscriber that falls too far behind, without blocking publishers", async () => {
    const ex = new Exchange();
    const slow = ex.subscribe({ maxQueued: 3 });
    for (let i = 0; i < 10; i++) ex.publish("default", "/x", ev(String(i)));
    const got: string[] = [];
    let err: unknown;
    try {
      for await (const e of slow) got.push(e.topic);
    } catch (e) {
      err = e;
    }
    expect(got).toHaveLength(3);
    expect(isResourceExhausted(err)).toBe(true);
  });
});
