/** A server of the test environment, started and owned by whoever called its start function. */
export interface RunningPart<T> {
  info: T;
  stop(): Promise<void>;
}
