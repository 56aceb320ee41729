package dev.poolgoaway.wire;

import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * pgjdbc StartupMessages of a chosen length, near PostgreSQL's 10,004-byte limit (its length word and
 * MAX_STARTUP_PACKET_LENGTH, the same from 13 to 18): a long {@code ApplicationName} does it.
 */
final class LongStartup {

    private LongStartup() {
    }

    /** pgjdbc puts ApplicationName into the StartupMessage when it may assume a 9.0 server or later. */
    static Properties properties(Properties p, String applicationName) {
        p.setProperty("assumeMinServerVersion", "9.0");
        p.setProperty("ApplicationName", applicationName);
        return p;
    }

    /**
     * @param size     the StartupMessage's length in bytes, length word included
     * @param database the database the connections will name (it is part of the message)
     * @return an ApplicationName that makes pgjdbc's StartupMessage for user {@code postgres} (its other parameters
     *         are this machine's: the time zone) exactly {@code size} bytes long, measured on a listener that reads
     *         the length word
     */
    static String applicationNameFor(int size, String database) throws Exception {
        String probe = "x".repeat(1000);
        try (ServerSocket listener = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            CompletableFuture<Integer> length = CompletableFuture.supplyAsync(() -> {
                try (Socket client = listener.accept()) {
                    return new DataInputStream(client.getInputStream()).readInt();
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
            Properties p = properties(new Properties(), probe);
            p.setProperty("user", "postgres");
            p.setProperty("sslmode", "disable");
            p.setProperty("connectTimeout", "10");
            assertThrows(SQLException.class, () -> DriverManager.getConnection(
                    "jdbc:postgresql://127.0.0.1:" + listener.getLocalPort() + "/" + database, p));
            return "x".repeat(probe.length() + size - length.get(10, TimeUnit.SECONDS));
        }
    }
}
