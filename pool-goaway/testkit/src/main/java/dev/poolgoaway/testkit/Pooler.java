package dev.poolgoaway.testkit;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.UserPrincipal;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.Stream;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A real connection pooler, PgBouncer or pgpool-II, run from the machine's installed binaries in front of a
 * {@link PostgresUpstream}: the middleboxes that pgjdbc users put between their pools and PostgreSQL, and that
 * fail on what pgjdbc's default request would not ask for (PgBouncer up to 1.22 rejects any minor version above
 * 3.0, pgpool-II cannot parse the long cancel keys of protocol 3.2).
 *
 * <p>It listens on a free loopback port with trust authentication toward its clients, one upstream database
 * ({@code *} for PgBouncer), session pooling, and optionally TLS toward clients with the {@link TestCertificates}
 * server certificate. PgBouncer's admin console (database {@code pgbouncer}) is open to the upstream's user. Its
 * working directory (configuration, logs, pid file) is a temporary directory deleted on
 * {@link #close()}. PgBouncer refuses to run as root: started by root, it is told to become {@code postgres}.
 *
 * <p>Binaries are not downloaded: {@link #missing(Kind)} says when they are absent and how to install them, so a
 * test can skip with that line instead of failing or vanishing.
 */
public final class Pooler implements PostgresUpstream {

    private static final Logger log = LoggerFactory.getLogger(Pooler.class);
    private static final Duration START_TIMEOUT = Duration.ofSeconds(20);
    private static final Duration STOP_TIMEOUT = Duration.ofSeconds(10);
    /** Where Debian installs the poolers; root's PATH has it, a CI runner's may not. */
    private static final List<String> EXTRA_BIN_DIRS = List.of("/usr/sbin", "/usr/local/sbin", "/usr/local/bin");
    /** The unprivileged user PgBouncer switches to when started as root (Debian's packages create it). */
    private static final String RUN_AS = "postgres";

    /** The poolers this class can run. */
    public enum Kind {
        /** PgBouncer (Debian package {@code pgbouncer}). */
        PGBOUNCER("pgbouncer", "pgbouncer"),
        /** pgpool-II (Debian package {@code pgpool2}). */
        PGPOOL("pgpool", "pgpool2");

        private final String binary;
        private final String debianPackage;

        Kind(String binary, String debianPackage) {
            this.binary = binary;
            this.debianPackage = debianPackage;
        }

        /** @return the command that installs it on Debian */
        public String installCommand() {
            return "apt-get install -y " + debianPackage;
        }
    }

    /**
     * How the pooler authenticates its clients: {@link #TRUST} (no password), or a password it checks itself, asked
     * for in clear text or with an MD5 challenge. The server behind it is still reached without a password.
     *
     * @param method   {@code trust}, {@code password} or {@code md5}
     * @param password the password clients must give; empty for {@code trust}
     */
    public record ClientAuth(String method, String password) {
        /** No password asked for. */
        public static final ClientAuth TRUST = new ClientAuth("trust", "");

        /** Validates. */
        public ClientAuth {
            if (!List.of("trust", "password", "md5").contains(method)) {
                throw new IllegalArgumentException("method must be trust, password or md5: " + method);
            }
            if (method.equals("trust") != password.isEmpty()) {
                throw new IllegalArgumentException("a password for password and md5, none for trust");
            }
            if (password.indexOf(':') >= 0 || password.indexOf('\n') >= 0) {
                throw new IllegalArgumentException("the password cannot contain ':' or a line break");
            }
        }

        /** @return clients give {@code password} in clear text (AuthenticationCleartextPassword) */
        public static ClientAuth password(String password) {
            return new ClientAuth("password", password);
        }

        /** @return clients answer an MD5 challenge with {@code password} */
        public static ClientAuth md5(String password) {
            return new ClientAuth("md5", password);
        }
    }

    private final Kind kind;
    private final PostgresUpstream upstream;
    private final ClientAuth auth;
    private final Path dir;
    private final Process process;
    private final int port;
    private final String version;

    private Pooler(Kind kind, PostgresUpstream upstream, ClientAuth auth, Path dir, Process process, int port,
            String version) {
        this.kind = kind;
        this.upstream = upstream;
        this.auth = auth;
        this.dir = dir;
        this.process = process;
        this.port = port;
        this.version = version;
    }

    /**
     * @param kind a pooler
     * @return empty if its binary is installed; else why not and how to install it
     */
    public static Optional<String> missing(Kind kind) {
        return binary(kind).isPresent() ? Optional.empty()
                : Optional.of(kind.binary + " is not installed (" + kind.installCommand() + ", as root)");
    }

    /**
     * Starts a pooler in front of {@code upstream}, which must accept its connections without a password.
     *
     * @param kind      which pooler
     * @param upstream  the server behind it
     * @param clientTls whether it offers TLS to its clients (they may still connect without)
     * @return the running pooler, accepting connections
     * @throws IOException if it is not installed, cannot be configured, or does not start in time
     */
    public static Pooler start(Kind kind, PostgresUpstream upstream, boolean clientTls) throws IOException {
        return start(kind, upstream, clientTls, ClientAuth.TRUST);
    }

    /**
     * Starts a pooler that asks its clients for a password ({@link #password()}), in front of {@code upstream},
     * which must accept the pooler's connections without one.
     *
     * @param kind      which pooler; PgBouncer runs with {@code trust} or {@code md5} only (its clear-text
     *                  method is deprecated)
     * @param upstream  the server behind it
     * @param clientTls whether it offers TLS to its clients (they may still connect without)
     * @param auth      how it authenticates its clients
     * @return the running pooler, accepting connections
     * @throws IOException if it is not installed, cannot be configured, or does not start in time
     * @throws IllegalArgumentException for PgBouncer with {@code password}
     */
    public static Pooler start(Kind kind, PostgresUpstream upstream, boolean clientTls, ClientAuth auth)
            throws IOException {
        return start(kind, upstream, clientTls ? TestCertificates.get() : null, auth);
    }

    /**
     * Starts a pooler that offers TLS to its clients with the given certificates: one of several nodes, each with
     * its own certificate ({@link TestCertificates#anotherServer()}).
     *
     * @param kind      which pooler
     * @param upstream  the server behind it
     * @param clientTls the server certificate it presents, or null for no TLS
     * @param auth      how it authenticates its clients
     * @return the running pooler, accepting connections
     * @throws IOException if it is not installed, cannot be configured, or does not start in time
     */
    public static Pooler start(Kind kind, PostgresUpstream upstream, TestCertificates clientTls, ClientAuth auth)
            throws IOException {
        if (kind == Kind.PGBOUNCER && auth.method().equals("password")) {
            throw new IllegalArgumentException("the test kit runs PgBouncer with trust or md5 authentication only");
        }
        Path binary = binary(kind).orElseThrow(() -> new IOException(missing(kind).orElseThrow()));
        Path dir = Files.createTempDirectory("pool-goaway-" + kind.binary);
        int port = freePort();
        List<String> command = new ArrayList<>();
        command.add(binary.toString());
        if (kind == Kind.PGBOUNCER) {
            writePgBouncerConfig(dir, upstream, port, clientTls, auth);
            if (runningAsRoot()) {
                handTo(dir, RUN_AS);
                command.addAll(List.of("-u", RUN_AS));
            }
            command.add(dir.resolve("pgbouncer.ini").toString());
        } else {
            writePgpoolConfig(dir, upstream, port, freePort(), clientTls, auth);
            command.addAll(List.of("-n", "-f", dir.resolve("pgpool.conf").toString(),
                    "-F", dir.resolve("pcp.conf").toString(), "-a", dir.resolve("pool_hba.conf").toString()));
        }
        String version = version(binary);
        Process process = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(dir.resolve("output.log").toFile()).start();
        Pooler pooler = new Pooler(kind, upstream, auth, dir, process, port, version);
        try {
            pooler.awaitListening();
        } catch (IOException | RuntimeException e) {
            pooler.close();
            throw e;
        }
        log.info("started {}", pooler);
        return pooler;
    }

    /** @return which pooler this is */
    public Kind kind() {
        return kind;
    }

    /** @return the pooler's own version line, e.g. {@code PgBouncer 1.18.0} */
    public String version() {
        return version;
    }

    @Override
    public String host() {
        return "127.0.0.1";
    }

    @Override
    public int port() {
        return port;
    }

    @Override
    public String user() {
        return upstream.user();
    }

    /** @return the password the pooler asks its clients for ({@link ClientAuth}); the upstream's under trust */
    @Override
    public String password() {
        return auth.password().isEmpty() ? upstream.password() : auth.password();
    }

    @Override
    public String database() {
        return upstream.database();
    }

    /**
     * @return the pooler's log so far (its own log file and its standard output), for a failing test's message
     */
    public String logText() {
        StringBuilder out = new StringBuilder();
        for (String name : List.of("output.log", "pooler.log")) {
            Path file = dir.resolve(name);
            try {
                if (Files.exists(file)) {
                    out.append(Files.readString(file, StandardCharsets.UTF_8));
                }
            } catch (IOException e) {
                out.append("(cannot read ").append(file).append(": ").append(e).append(")\n");
            }
        }
        return out.toString();
    }

    /** Stops the pooler (its child processes too) and deletes its working directory. */
    @Override
    public void close() throws IOException {
        ProcessHandle handle = process.toHandle();
        List<ProcessHandle> children = handle.descendants().toList();
        process.destroy();
        try {
            if (!process.waitFor(STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
                process.destroyForcibly().waitFor(STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        // pgpool-II's children outlive a main process killed by SIGTERM for a moment: end them too.
        children.forEach(ProcessHandle::destroyForcibly);
        try (Stream<Path> files = Files.walk(dir)) {
            files.sorted(Comparator.reverseOrder()).map(Path::toFile).forEach(File::delete);
        }
        log.info("stopped {}", this);
    }

    @Override
    public String toString() {
        return version + " on " + host() + ":" + port + " in front of " + upstream.host() + ":" + upstream.port();
    }

    // ---- starting ---------------------------------------------------------------------------------------------

    private void awaitListening() throws IOException {
        long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
        while (true) {
            if (!process.isAlive()) {
                throw new IOException(version + " exited with " + process.exitValue() + " at start:\n" + logText());
            }
            try (Socket probe = new Socket()) {
                probe.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 1000);
                return;
            } catch (IOException notYet) {
                if (System.nanoTime() - deadline > 0) {
                    throw new IOException(version + " did not listen on port " + port + " within " + START_TIMEOUT
                            + ":\n" + logText(), notYet);
                }
                // A process start, not a test condition: poll the port every 20 ms until it listens.
                LockSupport.parkNanos(Duration.ofMillis(20).toNanos());
            }
        }
    }

    private static void writePgBouncerConfig(Path dir, PostgresUpstream upstream, int port,
            TestCertificates clientTls, ClientAuth auth) throws IOException {
        Files.writeString(dir.resolve("users.txt"), "\"" + upstream.user() + "\" \"" + auth.password() + "\"\n");
        StringBuilder ini = new StringBuilder()
                .append("[databases]\n")
                .append("* = host=").append(address(upstream)).append(" port=").append(upstream.port()).append('\n')
                .append("[pgbouncer]\n")
                .append("listen_addr = 127.0.0.1\n")
                .append("listen_port = ").append(port).append('\n')
                .append("unix_socket_dir =\n")
                .append("auth_type = ").append(auth.method()).append('\n')
                .append("auth_file = ").append(dir.resolve("users.txt")).append('\n')
                // The admin console (SHOW, RELOAD, RECONNECT, WAIT_CLOSE), as an operator uses it at a switchover.
                .append("admin_users = ").append(upstream.user()).append('\n')
                .append("pool_mode = session\n")
                .append("max_client_conn = 200\n")
                .append("default_pool_size = 40\n")
                // pgjdbc sends extra_float_digits; every PgBouncer guide for JDBC lists it here.
                .append("ignore_startup_parameters = extra_float_digits\n")
                .append("logfile = ").append(dir.resolve("pooler.log")).append('\n')
                .append("pidfile = ").append(dir.resolve("pgbouncer.pid")).append('\n');
        if (clientTls != null) {
            writeCertificates(dir, clientTls);
            ini.append("client_tls_sslmode = allow\n")
                    .append("client_tls_cert_file = ").append(dir.resolve("server.crt")).append('\n')
                    .append("client_tls_key_file = ").append(dir.resolve("server.key")).append('\n');
        }
        Files.writeString(dir.resolve("pgbouncer.ini"), ini);
    }

    private static void writePgpoolConfig(Path dir, PostgresUpstream upstream, int port, int pcpPort,
            TestCertificates clientTls, ClientAuth auth) throws IOException {
        Files.writeString(dir.resolve("pcp.conf"), "");
        boolean hba = !auth.method().equals("trust");
        Files.writeString(dir.resolve("pool_hba.conf"), "");
        if (hba) {
            // pgpool-II checks the password itself against pool_passwd, then reaches the server with trust.
            Files.writeString(dir.resolve("pool_hba.conf"), "local all all trust\nhost all all 127.0.0.1/32 "
                    + auth.method() + "\nhost all all ::1/128 " + auth.method() + "\n");
            String stored = auth.method().equals("md5") ? "md5" + md5Hex(auth.password() + upstream.user())
                    : "TEXT" + auth.password();
            Files.writeString(dir.resolve("pool_passwd"), upstream.user() + ":" + stored + "\n");
        }
        Files.createDirectories(dir.resolve("oiddir"));
        StringBuilder conf = new StringBuilder()
                .append("backend_clustering_mode = 'raw'\n")
                .append("listen_addresses = '127.0.0.1'\n")
                .append("port = ").append(port).append('\n')
                .append("unix_socket_directories = '").append(dir).append("'\n")
                .append("pcp_listen_addresses = ''\n")
                .append("pcp_port = ").append(pcpPort).append('\n')
                .append("pcp_socket_dir = '").append(dir).append("'\n")
                .append("backend_hostname0 = '").append(address(upstream)).append("'\n")
                .append("backend_port0 = ").append(upstream.port()).append('\n')
                .append("backend_weight0 = 1\n")
                .append("backend_flag0 = 'DISALLOW_TO_FAILOVER'\n")
                .append("enable_pool_hba = ").append(hba ? "on" : "off").append('\n')

                .append("pid_file_name = '").append(dir.resolve("pgpool.pid")).append("'\n")
                .append("logdir = '").append(dir).append("'\n")
                .append("memqcache_oiddir = '").append(dir.resolve("oiddir")).append("'\n")
                // One child per concurrent client: room for a test's pools and its checks.
                .append("num_init_children = 24\n")
                .append("max_pool = 1\n")
                .append("health_check_period = 0\n")
                .append("sr_check_period = 0\n")
                .append("failover_on_backend_error = off\n")
                .append("load_balance_mode = off\n")
                .append("log_destination = 'stderr'\n");
        if (hba) {
            conf.append("pool_passwd = '").append(dir.resolve("pool_passwd")).append("'\n");
        }
        if (clientTls != null) {
            writeCertificates(dir, clientTls);
            conf.append("ssl = on\n")
                    .append("ssl_cert = '").append(dir.resolve("server.crt")).append("'\n")
                    .append("ssl_key = '").append(dir.resolve("server.key")).append("'\n");
        }
        Files.writeString(dir.resolve("pgpool.conf"), conf);
    }

    private static String md5Hex(String text) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("MD5")
                    .digest(text.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("no MD5 in this JVM", e);
        }
    }

    private static void writeCertificates(Path dir, TestCertificates certificates) throws IOException {
        certificates.write(dir.resolve("root.crt"), dir.resolve("server.crt"), dir.resolve("server.key"));
    }

    /** PgBouncer and pgpool-II want an address; {@code localhost} could resolve to IPv6 first. */
    private static String address(PostgresUpstream upstream) {
        return "localhost".equals(upstream.host()) ? "127.0.0.1" : upstream.host();
    }

    private static Optional<Path> binary(Kind kind) {
        String path = System.getenv().getOrDefault("PATH", "");
        List<String> dirs = new ArrayList<>(List.of(path.split(File.pathSeparator)));
        dirs.addAll(EXTRA_BIN_DIRS);
        return dirs.stream().filter(d -> !d.isBlank()).map(d -> Path.of(d, kind.binary))
                .filter(Files::isExecutable).findFirst();
    }

    private static String version(Path binary) throws IOException {
        Process p = new ProcessBuilder(binary.toString(), "--version").redirectErrorStream(true).start();
        try {
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            p.waitFor(STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
            return out.lines().findFirst().orElse(binary.getFileName().toString()).trim();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted asking " + binary + " for its version", e);
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    private static boolean runningAsRoot() {
        return "root".equals(System.getProperty("user.name"));
    }

    private static void handTo(Path dir, String user) throws IOException {
        UserPrincipal owner;
        try {
            owner = dir.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName(user);
        } catch (IOException e) {
            throw new IOException("PgBouncer will not run as root and there is no user '" + user
                    + "' to run it as (Debian's pgbouncer package creates it)", e);
        }
        try (Stream<Path> files = Files.walk(dir)) {
            files.forEach(f -> {
                try {
                    Files.setOwner(f, owner);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
        }
    }
}
