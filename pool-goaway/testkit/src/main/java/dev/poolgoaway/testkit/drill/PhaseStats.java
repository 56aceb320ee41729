package dev.poolgoaway.testkit.drill;

/**
 * What the application saw in one phase of a drill.
 *
 * @param requests      requests started in the phase
 * @param failed        those that failed (getConnection or the query threw)
 * @param getConnection time to borrow a connection from the pool, successful borrows only
 * @param query         time to run the request on the borrowed connection, successful requests only
 */
public record PhaseStats(int requests, int failed, Latency getConnection, Latency query) {
}
