package dev.poolgoaway.testkit.drill;

/** How a drill moves the database from the old server to the new one. */
public enum Switchover {

    /**
     * The proxy sends new connections to the new server, then the old one enters smart shutdown
     * ({@code pg_ctl stop -m smart}): GoAway to its clients, open connections keep working until they leave.
     */
    SMART,

    /**
     * The proxy sends new connections to the new server, then the old one is really stopped with
     * {@code pg_ctl stop -m fast}: every backend is terminated, in-flight requests fail. The old server is gone
     * afterwards (its data directory too, for an embedded one).
     */
    FAST
}
