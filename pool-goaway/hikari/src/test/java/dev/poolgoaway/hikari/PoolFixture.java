package dev.poolgoaway.hikari;

import static org.awaitility.Awaitility.await;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;

import com.zaxxer.hikari.HikariConfig;

import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.testkit.LoadGenerator;
import dev.poolgoaway.testkit.PostgresUpstream;
import dev.poolgoaway.testkit.ProxiedConnection;

/** What the pool-level tests share: a pool configuration, where a pool's connections are, and the leak checks. */
final class PoolFixture {

    static final Duration WAIT = Duration.ofSeconds(15);
    /** The evictor's thread is named so (then the pool's name). */
    static final String EVICTOR_THREAD = "poolgoaway-evictor-";

    private PoolFixture() {
    }

    /** A fixed-size pool of {@code size} for user {@code postgres}; install pool-goaway into it before starting. */
    static HikariConfig config(String jdbcUrl, String poolName, int size) {
        HikariConfig config = new HikariConfig();
        config.setJdbcUrl(jdbcUrl);
        config.setUsername("postgres");
        config.setMaximumPoolSize(size);
        config.setMinimumIdle(size);
        config.setPoolName(poolName);
        config.setConnectionTimeout(10_000);
        return config;
    }

    static int serverPort(Connection c) throws SQLException {
        return selectInt(c, "select inet_server_port()");
    }

    /** @return the backend pid the server reports for the connection (a query: it also reads what is waiting) */
    static int serverPid(Connection c) throws SQLException {
        return selectInt(c, "select pg_backend_pid()");
    }

    private static int selectInt(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            rs.next();
            return rs.getInt(1);
        }
    }

    /**
     * Borrows {@code size} connections at once and checks each is on {@code server}; HikariCP 5.1 closes a connection
     * marked evicted only when it next finds it idle, so this also makes it close those.
     */
    static void borrowAllFrom(javax.sql.DataSource pool, int size, PostgresUpstream server) throws SQLException {
        List<Connection> all = new java.util.ArrayList<>();
        try {
            for (int i = 0; i < size; i++) {
                all.add(pool.getConnection());
                if (serverPort(all.get(i)) != server.port()) {
                    throw new AssertionError("connection " + i + " is not on " + server.port());
                }
            }
        } finally {
            for (Connection c : all) {
                c.close();
            }
        }
    }

    /** @return the backend pids of the proxy's open connections to {@code server} */
    static Set<Integer> openPidsOn(GoAwayProxy proxy, PostgresUpstream server) {
        return proxy.openConnections().stream()
                .filter(c -> c.upstream() != null && c.upstream().getPort() == server.port())
                .map(ProxiedConnection::backendPid).collect(Collectors.toSet());
    }

    /** Waits until the load has succeeded {@code more} times more than so far: the pool goes on serving. */
    static void awaitMoreSucceeded(LoadGenerator load, int more) {
        long now = load.succeeded();
        await().atMost(WAIT).until(() -> load.succeeded() > now + more);
    }

    /** @return names of the live threads whose name starts with one of the prefixes */
    static List<String> liveThreads(String... prefixes) {
        return Thread.getAllStackTraces().keySet().stream().filter(Thread::isAlive).map(Thread::getName)
                .filter(name -> List.of(prefixes).stream().anyMatch(name::startsWith)).sorted().toList();
    }

    /**
     * After the pool has closed: no socket left open through the proxy, and no thread left of the evictor, the pool
     * or the load.
     */
    static void awaitNothingLeftOf(String poolName, GoAwayProxy proxy) {
        await().atMost(WAIT).untilAsserted(() -> {
            if (!proxy.openConnections().isEmpty()) {
                throw new AssertionError("sockets left open through the proxy: " + proxy.openConnections());
            }
            List<String> left = liveThreads(EVICTOR_THREAD, poolName + " ", LoadGenerator.THREAD_PREFIX);
            if (!left.isEmpty()) {
                throw new AssertionError("threads left: " + left);
            }
        });
    }
}
