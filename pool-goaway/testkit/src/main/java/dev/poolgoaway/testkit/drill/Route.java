package dev.poolgoaway.testkit.drill;

import java.time.Instant;
import java.util.List;
import java.util.Optional;

import dev.poolgoaway.testkit.PostgresUpstream;

/**
 * How a drill's pool reaches the servers, and so how the drill moves it and sees where its connections are: through
 * the test kit's proxy ({@link ProxyRoute}), or by a DNS name the drill re-points ({@link DnsRoute}).
 */
interface Route {

    /** One connection of the pool to a server, as the route sees it. */
    record Open(long id, Instant connectedAt) {
    }

    /** @return where new connections go now, for messages; {@code host:port} */
    String currentTarget();

    /** @return true if new connections go to that server now */
    boolean sendsTo(PostgresUpstream server);

    /** Sends new connections to that server from now on. */
    void switchTo(PostgresUpstream server);

    /** Smart shutdown of the server: its open connections keep working, new ones are refused. */
    void smartShutdown(PostgresUpstream server);

    /** @return the pool's connections open now to that server */
    List<Open> openOn(PostgresUpstream server);

    /** @return when the last of these connections closed, if the route knows */
    Optional<Instant> lastClose(List<Open> connections);

    /** @return when each connection to that server the route has seen was opened, closed ones included */
    List<Instant> openedOn(PostgresUpstream server);

    /** The drill is over: let go of what the route opened to watch the servers. */
    default void close() {
    }
}
