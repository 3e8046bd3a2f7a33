// Prints "N passed, N failed[, N skipped]" from vitest's JSON report (CI reads that line, not vitest's own).
import { readFileSync } from "node:fs";

const file = process.argv[2];
let report;
try {
  report = JSON.parse(readFileSync(file, "utf8"));
} catch (err) {
  console.log(`test report ${file} unreadable: ${err.message}`);
  console.log("0 passed, 1 failed");
  process.exit(0);
}
const passed = report.numPassedTests ?? 0;
// A test file that failed without a failed test (it did not load, or a hook failed) counts as one failure: its
// tests never ran. numFailedTestSuites is not used: vitest counts every failed describe block in it.
const failed = (report.numFailedTests ?? 0) + countFilesFailedOutsideTests(report);
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);

function countFilesFailedOutsideTests(r) {
  return (r.testResults ?? []).filter(
    (file) => file.status === "failed" && !(file.assertionResults ?? []).some((a) => a.status === "failed"),
  ).length;
}
