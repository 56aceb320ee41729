package dev.poolgoaway.testkit.drill;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import dev.poolgoaway.testkit.DnsName;
import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.PostgresUpstream;

/**
 * The pool connects to the servers by a DNS name, as most deployments do, and the switchover re-points the name: no
 * proxy, stock PostgreSQL, nothing that sends GoAway. The drill sees the pool's connections from the servers
 * themselves: a session of its own on each ({@code pg_stat_activity}: every client backend but the test kit's own
 * is the pool's),
 * opened before the switchover, since a server in smart shutdown refuses new sessions. It sees them by polling, so
 * a connection's close is known to within a sample ({@code sampleEvery}, and the drain's 10 ms poll).
 */
final class DnsRoute implements Route {

    private static final String POOL_SESSIONS = "select pid, backend_start from pg_stat_activity"
            + " where backend_type = 'client backend' and application_name <> '" + EmbeddedUpstream.OWN_SESSION + "'";

    /** How long the JVM may keep answering the old address: its DNS cache time, plus a margin. */
    private static final Duration RESOLVE_TIMEOUT = Duration.ofSeconds(60);

    private final DnsName name;
    private final Map<PostgresUpstream, Connection> watching = new HashMap<>();
    /** Every connection seen, by server, with when it was last seen open. */
    private final Map<PostgresUpstream, Map<Open, Instant>> seen = new HashMap<>();

    DnsRoute(DnsName name) {
        this.name = name;
    }

    @Override
    public String currentTarget() {
        return name.name() + " = " + name.addresses();
    }

    @Override
    public boolean sendsTo(PostgresUpstream server) {
        List<String> now = name.addresses();
        // pgjdbc connects to the first address of the answer.
        return !now.isEmpty() && now.get(0).equals(server.host());
    }

    /**
     * Re-points the name, and returns once this JVM resolves it to the new server (its DNS cache expired), as an
     * operator waits out the name's TTL before stopping the old server: new connections go to the new server from
     * then on, as through a proxy that was retargeted.
     */
    @Override
    public void switchTo(PostgresUpstream server) {
        try {
            name.pointTo(server.host());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot re-point " + name, e);
        }
        long deadline = System.nanoTime() + RESOLVE_TIMEOUT.toNanos();
        while (!sendsTo(server)) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(name + " still resolves to " + name.addresses() + " "
                        + RESOLVE_TIMEOUT.toSeconds() + " s after it was re-pointed at " + server.host()
                        + ": is the JVM's DNS cache (networkaddress.cache.ttl) that long?");
            }
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while re-pointing " + name, e);
            }
        }
    }

    @Override
    public void smartShutdown(PostgresUpstream server) {
        try {
            ((EmbeddedUpstream) server).smartShutdown();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public synchronized List<Open> openOn(PostgresUpstream server) {
        Connection session = watching.get(server);
        if (session == null && !seen.containsKey(server)) {
            session = watch(server);
        }
        if (session == null) {
            return List.of();   // the server went away (a fast switchover)
        }
        List<Open> open = new ArrayList<>();
        try (Statement s = session.createStatement(); ResultSet rs = s.executeQuery(POOL_SESSIONS)) {
            while (rs.next()) {
                open.add(new Open(rs.getInt(1), rs.getTimestamp(2).toInstant()));
            }
        } catch (SQLException gone) {
            watching.remove(server);
            close(session);
            return List.of();
        }
        Instant now = Instant.now();
        Map<Open, Instant> onServer = seen.get(server);
        open.forEach(c -> onServer.put(c, now));
        return open;
    }

    private Connection watch(PostgresUpstream server) {
        try {
            Connection session = DriverManager.getConnection(server.jdbcUrl() + "?ApplicationName="
                    + EmbeddedUpstream.OWN_SESSION, server.user(), server.password());
            watching.put(server, session);
            seen.put(server, new LinkedHashMap<>());
            return session;
        } catch (SQLException e) {
            throw new IllegalStateException("the drill cannot watch " + server + ": " + e.getMessage(), e);
        }
    }

    @Override
    public synchronized Optional<Instant> lastClose(List<Open> connections) {
        return seen.values().stream().flatMap(m -> connections.stream().map(m::get))
                .filter(at -> at != null).max(Instant::compareTo);
    }

    @Override
    public synchronized List<Instant> openedOn(PostgresUpstream server) {
        return seen.getOrDefault(server, Map.of()).keySet().stream().map(Open::connectedAt).toList();
    }

    @Override
    public synchronized void close() {
        watching.values().forEach(DnsRoute::close);
        watching.clear();
        seen.clear();
    }

    private static void close(Connection session) {
        try {
            session.close();
        } catch (SQLException e) {
            // a session to a server that went away
        }
    }
}
