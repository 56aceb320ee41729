package dev.poolgoaway.testkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PipedInputStream;
import java.io.PipedOutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;

/**
 * The balancer's entry point against two real embedded PostgreSQL servers, through its fixed port with real pgjdbc,
 * and its answers to bad input.
 */
class GoAwayBalancerMainTest {

    static final EmbeddedUpstream blue = EmbeddedUpstream.shared("blue");
    static final EmbeddedUpstream green = EmbeddedUpstream.shared("green");

    @Test
    void listensOnTheFixedPortAndSwitchesNewConnectionsOnNext() throws Exception {
        int port = freePort();
        PipedOutputStream commands = new PipedOutputStream();
        PipedInputStream stdin = new PipedInputStream(commands);
        PipedInputStream printed = new PipedInputStream(64 * 1024);
        PrintStream stdout = new PrintStream(new PipedOutputStream(printed), true, StandardCharsets.UTF_8);
        ByteArrayOutputStream stderr = new ByteArrayOutputStream();
        BufferedReader lines = new BufferedReader(new InputStreamReader(printed, StandardCharsets.UTF_8));
        String[] args = {"--listen=127.0.0.1:" + port,
                "--upstream=" + blue.host() + ":" + blue.port() + "," + green.host() + ":" + green.port()};
        CompletableFuture<Integer> exit = CompletableFuture.supplyAsync(() -> GoAwayBalancerMain.run(args, stdin,
                stdout, new PrintStream(stderr, true, StandardCharsets.UTF_8), false));

        String listening = lines.readLine();
        assertEquals("listening on 127.0.0.1:" + port + ", new connections to " + blue.host() + ":" + blue.port()
                + " (GoAway dialect PROTOCOL_3_3)", listening, "stderr: " + stderr);
        String url = "jdbc:postgresql://127.0.0.1:" + port + "/" + blue.database();
        try (Connection onBlue = DriverManager.getConnection(url, blue.user(), blue.password())) {
            assertEquals(blue.port(), serverPort(onBlue));

            send(commands, "next");
            assertEquals("new connections to " + green.host() + ":" + green.port()
                    + ", 1 open connection(s) stay where they are", lines.readLine());
            try (Connection onGreen = DriverManager.getConnection(url, green.user(), green.password())) {
                assertEquals(green.port(), serverPort(onGreen));
            }
            assertEquals(blue.port(), serverPort(onBlue), "the open connection stays on blue");

            send(commands, "goaway");
            assertTrue(lines.readLine().startsWith("smart shutdown of " + green.host() + ":" + green.port()));
            try (Connection refused = DriverManager.getConnection(url, green.user(), green.password())) {
                throw new AssertionError("a new connection to a shutting-down server was accepted");
            } catch (SQLException e) {
                assertEquals("57P03", e.getSQLState(), e.toString());
            }
            send(commands, "next");
            lines.readLine();
            try (Connection backOnBlue = DriverManager.getConnection(url, blue.user(), blue.password())) {
                assertEquals(blue.port(), serverPort(backOnBlue));
            }
            send(commands, "frobnicate");
            assertEquals("unknown command 'frobnicate': next, goaway, status or quit", lines.readLine());
            send(commands, "quit");
            assertEquals("closing", lines.readLine());
        }
        assertEquals(0, exit.get(30, TimeUnit.SECONDS));
        try (ServerSocket again = new ServerSocket(port, 1, InetAddress.getByName("127.0.0.1"))) {
            assertEquals(port, again.getLocalPort(), "the port is free again after quit");
        }
    }

    @Test
    void helpPrintsUsage() {
        Result r = run("--help");
        assertEquals(0, r.status);
        assertTrue(r.out.startsWith("Usage: GoAwayBalancerMain --upstream=host:port"), r.out);
    }

    @Test
    void badInputIsRefusedWithAReason() {
        assertUsage("--upstream=host:port[,host:port...] is required", "--listen=127.0.0.1:6432");
        assertUsage("--upstream: 'db.example' is not host:port", "--upstream=db.example");
        assertUsage("--upstream: port 70000 in 'localhost:70000' is not 1-65535", "--upstream=localhost:70000");
        assertUsage("--upstream: 'x' in 'localhost:x' is not a port number", "--upstream=localhost:x");
        assertUsage("--upstream: '' is not host:port", "--upstream=localhost:5432,");
        assertUsage("--listen: 10.1.2.3 is not a loopback address", "--listen=10.1.2.3:6432",
                "--upstream=localhost:5432");
        assertUsage("--dialect: 'v9' is not protocol-3.3, extension or none", "--dialect=v9",
                "--upstream=localhost:5432");
        assertUsage("unknown option --port=1", "--port=1");
        assertUsage("--upstream needs a value", "--upstream");
    }

    @Test
    void aPortInUseIsAnErrorNotAHang() throws IOException {
        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
            Result r = run("--listen=127.0.0.1:" + taken.getLocalPort(), "--upstream=localhost:5432");
            assertEquals(GoAwayBalancerMain.FAILED, r.status);
            assertTrue(r.err.startsWith("error: cannot listen on 127.0.0.1:" + taken.getLocalPort()), r.err);
        }
    }

    private static void assertUsage(String expected, String... args) {
        Result r = run(args);
        assertEquals(GoAwayBalancerMain.USAGE, r.status, r.err);
        assertTrue(r.err.startsWith("error: " + expected), r.err);
        assertTrue(r.err.contains("run with --help for usage"), r.err);
    }

    private record Result(int status, String out, String err) {
    }

    private static Result run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status = GoAwayBalancerMain.run(args, new ByteArrayInputStream(new byte[0]),
                new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8),
                false);
        return new Result(status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    private static void send(PipedOutputStream commands, String line) throws IOException {
        commands.write((line + "\n").getBytes(StandardCharsets.UTF_8));
        commands.flush();
    }

    private static int serverPort(Connection c) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select current_setting('port')::int")) {
            rs.next();
            return rs.getInt(1);
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
            return probe.getLocalPort();
        }
    }
}
