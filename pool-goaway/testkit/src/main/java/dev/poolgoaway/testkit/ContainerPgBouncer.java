package dev.poolgoaway.testkit;

import java.time.Duration;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.Network;
import org.testcontainers.containers.wait.strategy.Wait;
import org.testcontainers.postgresql.PostgreSQLContainer;

/**
 * A current PgBouncer in front of PostgreSQL, both in Docker containers on one network, through Testcontainers:
 * the release Debian does not package yet ({@link Pooler} runs the packaged one). The client side is PgBouncer's
 * port, with user and password {@code postgres} (md5 through PgBouncer's user list) and session pooling.
 *
 * <p>Like {@link ContainerUpstream}, it refers to Testcontainers, an optional dependency of the test kit: touch it
 * only after {@link ContainerUpstream#dockerAvailable()} said yes.
 */
public final class ContainerPgBouncer implements PostgresUpstream {

    /** The image {@link #start()} runs: a widely used PgBouncer image that follows PgBouncer's releases. */
    public static final String DEFAULT_IMAGE = "edoburu/pgbouncer:latest";

    private static final Logger log = LoggerFactory.getLogger(ContainerPgBouncer.class);
    private static final String NAME = "postgres";
    private static final int PORT = 5432;

    private final Network network;
    private final PostgreSQLContainer server;
    private final GenericContainer<?> pgBouncer;

    private ContainerPgBouncer(Network network, PostgreSQLContainer server, GenericContainer<?> pgBouncer) {
        this.network = network;
        this.server = server;
        this.pgBouncer = pgBouncer;
    }

    /**
     * Starts {@link ContainerUpstream#DEFAULT_IMAGE} and {@link #DEFAULT_IMAGE} in front of it.
     *
     * @return both running, PgBouncer accepting connections
     * @throws RuntimeException from Testcontainers if Docker is missing or a container does not start
     */
    public static ContainerPgBouncer start() {
        Network network = Network.newNetwork();
        PostgreSQLContainer server = new PostgreSQLContainer(ContainerUpstream.DEFAULT_IMAGE)
                .withUsername(NAME).withPassword(NAME).withDatabaseName(NAME)
                .withNetwork(network).withNetworkAliases("db");
        GenericContainer<?> pgBouncer = new GenericContainer<>(DEFAULT_IMAGE)
                .withNetwork(network)
                .withEnv("DB_HOST", "db")
                .withEnv("DB_PORT", String.valueOf(PORT))
                .withEnv("DB_USER", NAME)
                .withEnv("DB_PASSWORD", NAME)
                .withEnv("DB_NAME", NAME)
                .withEnv("AUTH_TYPE", "md5")
                .withEnv("POOL_MODE", "session")
                // pgjdbc sends extra_float_digits; every PgBouncer guide for JDBC lists it.
                .withEnv("IGNORE_STARTUP_PARAMETERS", "extra_float_digits")
                .withEnv("LISTEN_PORT", String.valueOf(PORT))
                .withExposedPorts(PORT)
                .waitingFor(Wait.forListeningPort().withStartupTimeout(Duration.ofSeconds(60)));
        try {
            server.start();
            pgBouncer.start();
        } catch (RuntimeException e) {
            pgBouncer.stop();
            server.stop();
            network.close();
            throw e;
        }
        ContainerPgBouncer started = new ContainerPgBouncer(network, server, pgBouncer);
        log.info("started {}", started);
        return started;
    }

    @Override
    public String host() {
        return pgBouncer.getHost();
    }

    @Override
    public int port() {
        return pgBouncer.getMappedPort(PORT);
    }

    @Override
    public String user() {
        return NAME;
    }

    @Override
    public String password() {
        return NAME;
    }

    @Override
    public String database() {
        return NAME;
    }

    /** @return the PostgreSQL server behind PgBouncer, for a direct look (pg_stat_activity) */
    public PostgresUpstream server() {
        return PostgresUpstream.at(server.getHost(), server.getMappedPort(PostgreSQLContainer.POSTGRESQL_PORT), NAME,
                NAME, NAME);
    }

    /** Stops and removes both containers and their network. */
    @Override
    public void close() {
        log.info("stopping {}", this);
        pgBouncer.stop();
        server.stop();
        network.close();
    }

    @Override
    public String toString() {
        return "PgBouncer container " + DEFAULT_IMAGE + " on " + host() + ":" + port() + " in front of "
                + ContainerUpstream.DEFAULT_IMAGE;
    }
}
