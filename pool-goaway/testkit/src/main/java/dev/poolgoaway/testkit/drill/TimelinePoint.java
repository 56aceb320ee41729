package dev.poolgoaway.testkit.drill;

/**
 * One sample of a drill's timeline.
 *
 * @param millis       milliseconds since the drill started
 * @param onOld        client connections open through the proxy to the old server
 * @param onNew        client connections open through the proxy to the new server
 * @param succeeded    requests that succeeded so far
 * @param failed       requests that failed so far
 * @param inUse        connections the load held at that moment (requests between borrow and return)
 * @param waiting      requests waiting in {@code getConnection()} at that moment
 */
public record TimelinePoint(long millis, int onOld, int onNew, long succeeded, long failed, int inUse, int waiting) {
}
