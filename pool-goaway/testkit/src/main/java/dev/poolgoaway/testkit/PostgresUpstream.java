package dev.poolgoaway.testkit;

/**
 * A real PostgreSQL server the proxy forwards to: embedded, a Testcontainers container, or any host and port.
 */
public interface PostgresUpstream extends AutoCloseable {

    /** @return the host to connect to */
    String host();

    /** @return the port to connect to */
    int port();

    /** @return a superuser name */
    String user();

    /** @return its password (may be empty where trust authentication is configured) */
    String password();

    /** @return a database that exists */
    String database();

    /** @return a pgjdbc URL for {@link #database()}, straight to the server (not through a proxy) */
    default String jdbcUrl() {
        return "jdbc:postgresql://" + host() + ":" + port() + "/" + database();
    }

    /**
     * A server someone else runs and stops (a proxy, a container's server, any host and port).
     *
     * @return the address and credentials as an upstream whose {@code close()} does nothing
     */
    static PostgresUpstream at(String host, int port, String user, String password, String database) {
        return new Address(host, port, user, password, database);
    }

    /** What {@link #at} returns. */
    record Address(String host, int port, String user, String password, String database) implements PostgresUpstream {
        @Override
        public void close() {
            // not ours to stop
        }
    }
}
