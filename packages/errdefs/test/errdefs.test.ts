import { ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { fromConnectError, toConnectError } from "../src/connect/index.js";
import {
  AlreadyExistsError,
  ConflictError,
  FailedPreconditionError,
  GrpcCode,
  NotFoundError,
  errorFromGrpcCode,
  errorKind,
  fromNodeError,
  grpcCodeOf,
  isAlreadyExists,
  isCanceled,
  isNotFound,
} from "../src/index.js";

describe("error kinds", () => {
  it("formats messages subject first with containerd's suffix", () => {
    expect(new AlreadyExistsError("namespace a").message).toBe("namespace a: already exists");
    expect(new FailedPreconditionError("namespace is required").message).toBe(
      "namespace is required: failed precondition",
    );
    expect(new NotFoundError("thing: not found").message).toBe("thing: not found");
  });

  it("finds the kind through causes and across copies (brand, not instanceof)", () => {
    const inner = new NotFoundError("blob");
    const outer = new Error("wrapped", { cause: inner });
    expect(isNotFound(outer)).toBe(true);
    const foreign = Object.assign(new Error("x"), { [Symbol.for("berth.errdefs.kind")]: "AlreadyExists" });
    expect(isAlreadyExists(foreign)).toBe(true);
    expect(isCanceled(new DOMException("aborted", "AbortError"))).toBe(true);
  });

  it("maps Node errnos", () => {
    const enoent = Object.assign(new Error("no file"), { code: "ENOENT" });
    expect(isNotFound(enoent)).toBe(true);
    expect(fromNodeError(enoent).kind).toBe("NotFound");
    expect(fromNodeError(Object.assign(new Error("busy"), { code: "EBUSY" })).kind).toBe("FailedPrecondition");
    expect(errorKind(Object.assign(new Error(), { code: "EPERM" }))).toBe("PermissionDenied");
    expect(errorKind(Object.assign(new Error(), { code: "ENOSPC" }))).toBe("ResourceExhausted");
  });

  it("maps kinds to gRPC codes and back", () => {
    expect(grpcCodeOf(new NotFoundError("x"))).toBe(GrpcCode.NotFound);
    expect(grpcCodeOf(new ConflictError("x"))).toBe(GrpcCode.FailedPrecondition);
    expect(grpcCodeOf(new Error("plain"))).toBe(GrpcCode.Unknown);
    const back = errorFromGrpcCode(GrpcCode.Unimplemented, "not implemented");
    expect(back.kind).toBe("NotImplemented");
    expect(back.message).toBe("not implemented");
  });

  it("round-trips through ConnectError", () => {
    const ce = toConnectError(new AlreadyExistsError("namespace a"));
    expect(ce).toBeInstanceOf(ConnectError);
    expect(ce.code).toBe(GrpcCode.AlreadyExists);
    expect(ce.rawMessage).toBe("namespace a: already exists");
    const back = fromConnectError(ce);
    expect(isAlreadyExists(back)).toBe(true);
    expect(back.message).toBe("namespace a: already exists");
  });
});
