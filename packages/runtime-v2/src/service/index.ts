export { tasksService } from "./tasks.js";
export type { TasksServiceOptions } from "./tasks.js";
