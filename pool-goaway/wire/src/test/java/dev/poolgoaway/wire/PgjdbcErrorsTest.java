package dev.poolgoaway.wire;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.Random;
import java.util.function.Supplier;

import dev.poolgoaway.testkit.EmbeddedUpstream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * How a connection fails is part of the session pgjdbc would have had: the same scenario runs with plain pgjdbc and
 * through the wire layer, in the same test, and both must fail with the same SQLState, the same message and the
 * same chain of cause types (applications, Spring's translators and retry policies branch on them).
 *
 * <p>The peers that are not PostgreSQL are a scripted {@link ServerSocket} that stands for a proxy, a captive
 * portal or a wrong port (an HTTP server answering a request it cannot parse with {@code HTTP/1.1 400 Bad Request}
 * or an HTML page, a TLS server answering a ClientHello it cannot parse with an alert record, any other service
 * with bytes of its own, a firewall that closes or resets): none of them reads the PostgreSQL protocol, so what
 * they send does not depend on what they were sent, and a canned answer after the client's first bytes is what the
 * real ones do. The server errors during startup come from the real embedded PostgreSQL.
 */
class PgjdbcErrorsTest {

    private static final byte[] HTTP_400 = ("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
            + "Content-Length: 11\r\nConnection: close\r\n\r\nBad Request").getBytes(StandardCharsets.US_ASCII);
    private static final byte[] HTML = "<html><head><title>Sign in</title></head><body>Wi-Fi</body></html>\n"
            .getBytes(StandardCharsets.US_ASCII);
    /** A TLS 1.2 alert record: fatal (2), decode_error (50), as a TLS server answers bytes it cannot parse. */
    private static final byte[] TLS_ALERT = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32};

    private final List<ForeignPeer> peers = new ArrayList<>();

    @AfterEach
    void stopPeers() throws IOException {
        for (ForeignPeer p : peers) {
            p.close();
        }
    }

    @ParameterizedTest(name = "{0}, sslmode={1}")
    @CsvSource({
        "http-400, prefer", "http-400, require", "http-400, disable",
        "html, prefer", "html, require", "html, disable",
        "tls-alert, prefer", "tls-alert, require", "tls-alert, disable",
        "close, prefer", "close, require", "close, disable",
        "reset, prefer", "reset, require", "reset, disable"})
    void aPeerThatIsNotPostgresFailsTheConnectionAsPlainPgjdbcReportsIt(String answer, String sslmode)
            throws Exception {
        ForeignPeer peer = peer(switch (answer) {
            case "http-400" -> ForeignPeer.answering(HTTP_400);
            case "html" -> ForeignPeer.answering(HTML);
            case "tls-alert" -> ForeignPeer.answering(TLS_ALERT);
            case "close" -> ForeignPeer.closing();
            case "reset" -> ForeignPeer.resetting();
            default -> throw new IllegalArgumentException(answer);
        });
        assertSameFailure(peer.url(), properties(sslmode));
    }

    @ParameterizedTest(name = "seed {0}, sslmode={1}")
    @CsvSource({
        "1, prefer", "1, require", "1, disable", "2, prefer", "2, require", "2, disable",
        "3, prefer", "3, require", "3, disable", "4, prefer", "4, require", "4, disable",
        "5, prefer", "5, require", "5, disable", "6, prefer", "6, require", "6, disable"})
    void randomBytesFailTheConnectionAsPlainPgjdbcReportsThem(long seed, String sslmode) throws Exception {
        byte[] noise = new byte[64];
        new Random(seed).nextBytes(noise);
        assertSameFailure(peer(ForeignPeer.answering(noise)).url(), properties(sslmode));
    }

    /** What a wrong answer looks like to the layer's first-answer check: each first byte it could be. */
    @Test
    void everyFirstByteFailsTheConnectionAsPlainPgjdbcReportsIt() throws Exception {
        for (int first : new int[] {'H', '<', 0x15, 0, 'E', 'R', 'N', 'S', 'v', 'g', 'Z', 0xff}) {
            byte[] answer = new byte[16];
            new Random(first).nextBytes(answer);
            answer[0] = (byte) first;
            String url = peer(ForeignPeer.answering(answer)).url();
            for (String sslmode : new String[] {"prefer", "require", "disable"}) {
                assertSameFailure(url, properties(sslmode));
            }
        }
    }

    /** Server errors during startup, from the real PostgreSQL: pgjdbc's own exceptions, through the layer too. */
    @Test
    void serverErrorsDuringStartupAreReportedAsPlainPgjdbcReportsThem() throws Exception {
        TestPostgres pg = TestPostgres.get();
        try (Connection c = DriverManager.getConnection(pg.upstream.jdbcUrl(), pg.upstream.user(),
                pg.upstream.password()); Statement s = c.createStatement()) {
            s.execute("do $$ begin if not exists (select from pg_roles where rolname = 'no_slots') then "
                    + "create role no_slots login connection limit 0; end if; end $$");
        }
        for (boolean tls : new boolean[] {false, true}) {
            Properties badPassword = pg.clientProperties(tls);
            badPassword.setProperty("user", TestPostgres.SCRAM_USER);
            badPassword.setProperty("password", "wrong");
            assertEquals("28P01", assertSameFailure(pg.url("localhost"), badPassword).getSQLState());

            Properties full = pg.clientProperties(tls);
            full.setProperty("user", "no_slots");
            assertEquals("53300", assertSameFailure(pg.url("localhost"), full).getSQLState());

            assertEquals("3D000", assertSameFailure("jdbc:postgresql://localhost:" + pg.port() + "/no_such_db",
                    pg.clientProperties(tls)).getSQLState());
        }
    }

    /**
     * A server in smart shutdown (the postmaster got SIGTERM while a session stays open) refuses new connections
     * with {@code FATAL 57P03 the database system is shutting down}: a server of its own, for it does not come back.
     */
    @Test
    void aServerShuttingDownIsReportedAsPlainPgjdbcReportsIt() throws Exception {
        try (EmbeddedUpstream server = EmbeddedUpstream.start()) {
            Properties p = new Properties();
            p.setProperty("user", server.user());
            p.setProperty("password", server.password());
            p.setProperty("sslmode", "disable");
            try (Connection held = DriverManager.getConnection(server.jdbcUrl(), p)) {
                long postmaster;
                try (Statement s = held.createStatement();
                        java.sql.ResultSet rs = s.executeQuery("show data_directory")) {
                    rs.next();
                    postmaster = Long.parseLong(java.nio.file.Files.readAllLines(
                            java.nio.file.Path.of(rs.getString(1), "postmaster.pid")).get(0).trim());
                }
                // SIGTERM to the postmaster: a smart shutdown, which waits for the held session.
                assertTrue(ProcessHandle.of(postmaster).orElseThrow().destroy());
                Properties fresh = new Properties();
                fresh.putAll(p);
                org.awaitility.Awaitility.await().atMost(java.time.Duration.ofSeconds(30)).until(() -> {
                    try {
                        DriverManager.getConnection(server.jdbcUrl(), fresh).close();
                        return false;
                    } catch (SQLException e) {
                        return "57P03".equals(e.getSQLState());
                    }
                });
                assertEquals("57P03", assertSameFailure(server.jdbcUrl(), p).getSQLState());
            }
        }
    }

    private ForeignPeer peer(ForeignPeer p) {
        peers.add(p);
        return p;
    }

    private static Properties properties(String sslmode) {
        Properties p = new Properties();
        p.setProperty("user", "app");
        p.setProperty("sslmode", sslmode);
        // A safety net: a hang shows up as a timeout, the same in both runs, not a stuck build.
        p.setProperty("socketTimeout", "10");
        p.setProperty("connectTimeout", "10");
        return p;
    }

    /**
     * Connects with plain pgjdbc, then through the layer, and asserts both fail alike.
     *
     * @return the plain failure
     */
    private static SQLException assertSameFailure(String url, Properties plain) {
        Properties layered = new Properties();
        layered.putAll(plain);
        SQLException expected = failure(() -> url, plain);
        SQLException actual = failure(() -> url, PgGoAway.install(layered));
        assertAlike(url + " sslmode=" + plain.getProperty("sslmode"), expected, actual);
        return expected;
    }

    /** Asserts that the layered failure is the plain one: SQLState, message, and the types of the cause chain. */
    static void assertAlike(String scenario, SQLException plain, SQLException layered) {
        String what = scenario + ": plain " + chain(plain) + " / layered " + chain(layered);
        assertEquals(plain.getSQLState(), layered.getSQLState(), what);
        assertEquals(plain.getMessage(), layered.getMessage(), what);
        assertEquals(causeTypes(plain), causeTypes(layered), what);
    }

    private static SQLException failure(Supplier<String> url, Properties p) {
        return assertThrows(SQLException.class, () -> DriverManager.getConnection(url.get(), p).close());
    }

    private static List<String> causeTypes(Throwable t) {
        List<String> types = new ArrayList<>();
        for (Throwable c = t; c != null; c = c.getCause()) {
            types.add(c.getClass().getName());
        }
        return types;
    }

    private static String chain(Throwable t) {
        StringBuilder b = new StringBuilder();
        for (Throwable c = t; c != null; c = c.getCause()) {
            b.append(c.getClass().getSimpleName()).append(" [").append(c instanceof SQLException e
                    ? e.getSQLState() + "] " : "] ").append(c.getMessage()).append("; ");
        }
        return b.toString();
    }

    /**
     * A peer that is not PostgreSQL: for every connection, after the client's first bytes, it answers with fixed
     * bytes and closes (an HTTP server, a TLS server, any other service), or closes without a word, or resets.
     */
    private static final class ForeignPeer implements AutoCloseable {
        private enum Mode { ANSWER, CLOSE, RESET }

        private final ServerSocket listener;
        private final Mode mode;
        private final byte[] answer;

        private ForeignPeer(Mode mode, byte[] answer) throws IOException {
            this.mode = mode;
            this.answer = answer;
            this.listener = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
            Thread t = new Thread(this::acceptLoop, "foreign-peer");
            t.setDaemon(true);
            t.start();
        }

        static ForeignPeer answering(byte[] bytes) {
            return start(Mode.ANSWER, bytes);
        }

        static ForeignPeer closing() {
            return start(Mode.CLOSE, new byte[0]);
        }

        static ForeignPeer resetting() {
            return start(Mode.RESET, new byte[0]);
        }

        private static ForeignPeer start(Mode mode, byte[] answer) {
            try {
                return new ForeignPeer(mode, answer);
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }

        String url() {
            return "jdbc:postgresql://localhost:" + listener.getLocalPort() + "/db";
        }

        private void acceptLoop() {
            while (!listener.isClosed()) {
                try {
                    Socket s = listener.accept();
                    Thread t = new Thread(() -> serve(s), "foreign-peer-conn");
                    t.setDaemon(true);
                    t.start();
                } catch (IOException e) {
                    return;
                }
            }
        }

        private void serve(Socket s) {
            try (s) {
                s.setSoTimeout(10_000);
                InputStream in = s.getInputStream();
                OutputStream out = s.getOutputStream();
                if (mode == Mode.CLOSE) {
                    // A FIN at once; the client's bytes are still read, so that the close is never a reset.
                    s.shutdownOutput();
                    in.transferTo(OutputStream.nullOutputStream());
                    return;
                }
                if (in.read(new byte[8]) < 0) {
                    return;
                }
                if (mode == Mode.RESET) {
                    s.setSoLinger(true, 0);
                    return;
                }
                out.write(answer);
                out.flush();
                // Like a server that answered and hung up: a half-close, then whatever the client still sends is
                // read, so that no reset discards the answer before the client reads it.
                s.shutdownOutput();
                in.transferTo(OutputStream.nullOutputStream());
            } catch (IOException e) {
                // the client went away
            }
        }

        @Override
        public void close() throws IOException {
            listener.close();
        }
    }
}
