export { contentSuite } from "./suite.js";
export type { ContentSuiteFactory, ContentSuiteFixture, ContentSuiteOptions } from "./suite.js";
