export { eventsService } from "./events.js";
export type { EventsServiceOptions } from "./events.js";
export { eventsGrpcPlugin } from "./service-plugin.js";
