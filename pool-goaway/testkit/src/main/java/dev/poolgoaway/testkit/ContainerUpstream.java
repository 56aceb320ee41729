package dev.poolgoaway.testkit;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.postgresql.PostgreSQLContainer;

/**
 * PostgreSQL in a Docker container, through Testcontainers: for a server version or build that the embedded binaries
 * do not cover. The superuser is {@code postgres} with password {@code postgres}, the database {@code postgres}, the
 * same names as {@link EmbeddedUpstream} so that tests run unchanged on either.
 *
 * <p>Testcontainers is an optional dependency of the test kit. This class and {@link ContainerPgBouncer} are the
 * only ones that refer to it, and other classes touch them only after {@link #dockerAvailable()} said yes, so a
 * project without Testcontainers never loads it. To use it, add {@code org.testcontainers:testcontainers-postgresql}
 * to the test class path.
 */
public final class ContainerUpstream implements PostgresUpstream {

    /** The image {@link #start()} runs. */
    public static final String DEFAULT_IMAGE = "postgres:18";

    private static final Logger log = LoggerFactory.getLogger(ContainerUpstream.class);

    private static final String NAME = "postgres";

    private final PostgreSQLContainer container;

    private ContainerUpstream(PostgreSQLContainer container) {
        this.container = container;
    }

    /**
     * Whether containers can be started here: Testcontainers is on the class path and finds a Docker engine.
     * Asking Docker can take a few seconds the first time; Testcontainers remembers the answer.
     *
     * @return {@code true} if {@link #start()} can work; never throws
     */
    public static boolean dockerAvailable() {
        try {
            // Ask the class loader first: referring to a missing class would throw NoClassDefFoundError instead.
            Class.forName("org.testcontainers.DockerClientFactory", false, ContainerUpstream.class.getClassLoader());
        } catch (ClassNotFoundException | LinkageError e) {
            log.debug("Testcontainers is not on the class path: {}", e.toString());
            return false;
        }
        try {
            return DockerClientFactory.instance().isDockerAvailable();
        } catch (RuntimeException | LinkageError e) {
            // A broken Docker configuration or a Testcontainers jar without its dependencies: no Docker for us.
            log.debug("Testcontainers could not look for Docker", e);
            return false;
        }
    }

    /**
     * Starts {@link #DEFAULT_IMAGE} and waits until it accepts connections.
     *
     * @return the running container
     * @throws RuntimeException from Testcontainers if Docker is missing or the container does not start
     */
    public static ContainerUpstream start() {
        return start(DEFAULT_IMAGE);
    }

    /**
     * Starts a PostgreSQL image and waits until it accepts connections.
     *
     * @param image an image of the official {@code postgres} repository, e.g. {@code postgres:18-alpine}
     * @return the running container
     * @throws RuntimeException from Testcontainers if Docker is missing or the container does not start
     */
    public static ContainerUpstream start(String image) {
        PostgreSQLContainer container = new PostgreSQLContainer(image)
                .withUsername(NAME)
                .withPassword(NAME)
                .withDatabaseName(NAME);
        container.start();
        ContainerUpstream upstream = new ContainerUpstream(container);
        log.info("started {}", upstream);
        return upstream;
    }

    @Override
    public String host() {
        return container.getHost();
    }

    @Override
    public int port() {
        return container.getMappedPort(PostgreSQLContainer.POSTGRESQL_PORT);
    }

    @Override
    public String user() {
        return container.getUsername();
    }

    @Override
    public String password() {
        return container.getPassword();
    }

    @Override
    public String database() {
        return container.getDatabaseName();
    }

    /** Stops and removes the container. */
    @Override
    public void close() {
        log.info("stopping {}", this);
        container.stop();
    }

    @Override
    public String toString() {
        return "PostgreSQL container " + container.getDockerImageName() + " on " + host() + ":" + port();
    }
}
