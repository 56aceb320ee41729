package dev.poolgoaway.testkit;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;

/**
 * A tiny PostgreSQL-speaking server for tests that need server behaviour no real server has yet (GoAway) or should
 * never have (broken and hostile streams). Where {@link GoAwayProxy} puts a real PostgreSQL behind the protocol,
 * this one plays the server itself: it answers the startup like a real server (trust authentication), then every
 * simple Query with {@linkplain #queryReply(byte[]) a scripted reply}, and lets a test push any bytes to a
 * connection at any time, encrypted or as raw garbage under the TLS layer.
 *
 * <p>The script can change while clients are connected: make the server hostile, watch the client fail, then
 * {@link #behave()} and watch it recover. {@link #close()} ends every connection and thread it started.
 */
public final class ScriptedServer implements AutoCloseable {

    /**
     * How the server answers a StartupMessage asking for a newer protocol than it speaks. Each stands for real
     * peers that cannot be installed here; the wording is theirs (PostgreSQL's {@code ProcessStartupPacket} in
     * the releases named, PgBouncer's {@code NegotiateProtocolVersion} since 1.23).
     */
    public enum Startup {
        /** A 3.3 server (the GoAway patch): accepts silently. */
        SPEAKS_3_3,
        /** A 3.2 server (PostgreSQL 18, 19): NegotiateProtocolVersion down to 3.2. */
        SPEAKS_3_2,
        /** A 3.0 peer that negotiates (PostgreSQL 9.3.21+ to 17, PgBouncer 1.23+): NegotiateProtocolVersion 3.0. */
        NEGOTIATES_3_0,
        /** A server that refuses above 3.2: {@code FATAL 0A000 unsupported frontend protocol}, then close. */
        REJECTS_ABOVE_3_2,
        /**
         * PostgreSQL 9.3.0–9.3.20, 9.4.0–9.4.15, 9.5.0–9.5.10, 9.6.0–9.6.6, 10.0–10.1: {@code FATAL 0A000
         * unsupported frontend protocol 3.n: server supports 1.0 to 3.0} to any minor version above 0, then close.
         */
        REJECTS_ABOVE_3_0,
        /** The same refusal in German ({@code lc_messages = de_DE}): no English text to match. */
        REJECTS_ABOVE_3_0_IN_GERMAN,
        /**
         * A peer that closes without a word when asked above 3.2: a middlebox that drops a startup it cannot parse.
         * No installable peer here does so for the version alone; PostgreSQL itself closes without an answer on a
         * StartupMessage over its size limit, which is what the raised request must never cause.
         */
        CLOSES_SILENTLY_ABOVE_3_2
    }

    private final ServerSocket listener;
    private final SSLContext tls;
    private final Startup startup;
    private final List<Session> sessions = new CopyOnWriteArrayList<>();
    private final AtomicInteger pids = new AtomicInteger(10_000);
    private volatile byte[] beforeAuth;
    private volatile byte[] afterAuth;
    private volatile byte[] queryReply;
    private volatile boolean closeAfterReply;
    private volatile byte[] garbageForHandshake;
    private final AtomicInteger accepted = new AtomicInteger();
    private volatile int silentFrom = Integer.MAX_VALUE;
    private final List<Socket> silent = new CopyOnWriteArrayList<>();

    private ScriptedServer(Startup startup, SSLContext tls) throws IOException {
        this.startup = startup;
        this.tls = tls;
        behave();
        this.listener = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        Wire.serveEach(listener, "scripted-server", this::serve);
    }

    /**
     * Starts a server on a free localhost port.
     *
     * @param startup how it answers a request for protocol 3.3
     * @param tls     a server TLS context to answer SSLRequest with 'S' (for instance
     *                {@link TestCertificates#serverContext()}), or null to answer 'N'
     * @return the running server
     * @throws IOException if it cannot listen
     */
    public static ScriptedServer start(Startup startup, SSLContext tls) throws IOException {
        return new ScriptedServer(startup, tls);
    }

    /** @return the port it listens on */
    public int port() {
        return listener.getLocalPort();
    }

    /** @return a pgjdbc URL for it (any user and database are accepted) */
    public String jdbcUrl() {
        return "jdbc:postgresql://localhost:" + port() + "/db";
    }

    /** @return every connection that completed its startup, oldest first */
    public List<Session> sessions() {
        return sessions;
    }

    // ---- the script -------------------------------------------------------------------------------------------

    /** Back to a well-behaved server: a normal startup, {@link #selectOneReply()} to every Query. */
    public void behave() {
        beforeAuth = new byte[0];
        afterAuth = new byte[0];
        queryReply = selectOneReply();
        closeAfterReply = false;
        garbageForHandshake = null;
    }

    /**
     * @param bytes sent first in reply to every StartupMessage from now on, before AuthenticationOk (a
     *              NegotiateProtocolVersion, say, sane or bogus)
     */
    public void beforeAuth(byte[] bytes) {
        beforeAuth = bytes.clone();
    }

    /** @param bytes sent between AuthenticationOk and the ParameterStatus messages of every startup from now on */
    public void afterAuth(byte[] bytes) {
        afterAuth = bytes.clone();
    }

    /** @param reply the bytes every Query is answered with from now on */
    public void queryReply(byte[] reply) {
        queryReply = reply.clone();
    }

    /** @param close whether to close each connection right after answering a Query */
    public void closeAfterReply(boolean close) {
        closeAfterReply = close;
    }

    /**
     * Answers every SSLRequest from now on with 'S' and then these bytes instead of a TLS handshake, and closes the
     * connection: a TLS endpoint gone wrong. Needs a server started with TLS.
     *
     * @param garbage what the client's handshake reads
     */
    public void garbageInsteadOfHandshake(byte[] garbage) {
        if (tls == null) {
            throw new IllegalStateException("this server was started without TLS: it answers SSLRequest with 'N'");
        }
        garbageForHandshake = garbage.clone();
    }

    /**
     * Makes the {@code n}th TCP connection (counted from 1 since the start) and every later one silent: accepted,
     * read from, never answered, as a node behind a balancer that hangs. Until the client gives up.
     *
     * @param n the first silent connection
     */
    public void silentFrom(int n) {
        silentFrom = n;
    }

    /** @return how many TCP connections the server accepted so far */
    public int connections() {
        return accepted.get();
    }

    /**
     * The reply real PostgreSQL gives to {@code select 1} as text: RowDescription (27 bytes), DataRow,
     * CommandComplete, ReadyForQuery.
     *
     * @return a new copy of the bytes
     */
    public static byte[] selectOneReply() {
        ByteArrayOutputStream field = new ByteArrayOutputStream();
        field.writeBytes(new byte[] {0, 1});
        field.writeBytes(cstring("x"));
        // table oid, column, type oid 23 (int4), size 4, type modifier -1, format 0 (text)
        field.writeBytes(new byte[] {0, 0, 0, 0, 0, 0, 0, 0, 0, 23, 0, 4, -1, -1, -1, -1, 0, 0});
        return concat(Wire.message('T', field.toByteArray()),
                Wire.message('D', new byte[] {0, 1, 0, 0, 0, 1, '1'}),
                Wire.message('C', cstring("SELECT 1")),
                READY_FOR_QUERY);
    }

    private static final byte[] READY_FOR_QUERY = Wire.message('Z', new byte[] {'I'});

    // ---- serving ----------------------------------------------------------------------------------------------

    private void serve(Socket plain) {
        Socket s = plain;
        try {
            if (accepted.incrementAndGet() >= silentFrom) {
                silent.add(s);
                s.getInputStream().transferTo(OutputStream.nullOutputStream());
                return;
            }
            DataInputStream in = new DataInputStream(s.getInputStream());
            Session session;
            while (true) {
                int length = in.readInt();
                int code = in.readInt();
                if (code == Wire.SSL_REQUEST && tls != null) {
                    s.getOutputStream().write('S');
                    byte[] garbage = garbageForHandshake;
                    if (garbage != null) {
                        s.getOutputStream().write(garbage);
                        s.getOutputStream().flush();
                        return;
                    }
                    SSLSocket secure = (SSLSocket) tls.getSocketFactory().createSocket(s,
                            ((InetSocketAddress) s.getRemoteSocketAddress()).getHostString(), s.getPort(), true);
                    secure.setUseClientMode(false);
                    secure.startHandshake();
                    s = secure;
                    in = new DataInputStream(s.getInputStream());
                    continue;
                }
                if (code == Wire.SSL_REQUEST || code == Wire.GSSENC_REQUEST) {
                    s.getOutputStream().write('N');
                    continue;
                }
                byte[] parameters = in.readNBytes(length - 8);
                session = new Session(plain, s, pids.incrementAndGet(), code & 0xffff,
                        Wire.protocolOptions(parameters));
                break;
            }
            sessions.add(session);
            if (!startup(session)) {
                return;
            }
            while (true) {
                int type = in.read();
                if (type < 0 || type == 'X') {
                    break;
                }
                in.readNBytes(in.readInt() - 4);
                if (type == 'Q') {
                    session.send(queryReply);
                    if (closeAfterReply) {
                        if (s == plain) {
                            // A half-close, then read what the client still sends: closing with unread bytes
                            // would reset the connection and could discard the reply before the client reads it.
                            plain.shutdownOutput();
                            plain.setSoTimeout(1000);
                            in.transferTo(OutputStream.nullOutputStream());
                        }
                        break;
                    }
                }
            }
        } catch (IOException e) {
            // the client went away, or the test closed the session
        } finally {
            try {
                s.close();
                plain.close();
            } catch (IOException ignored) {
                // closing anyway
            }
        }
    }

    /** @return false if the startup was refused */
    private boolean startup(Session session) throws IOException {
        ByteArrayOutputStream reply = new ByteArrayOutputStream();
        reply.writeBytes(beforeAuth);
        int granted = session.requestedMinor;
        // Like PostgreSQL since the 2017 minor releases: a protocol option it does not know (every _pq_. one) is
        // listed in NegotiateProtocolVersion, which also carries the version it speaks.
        List<String> unknown = startup == Startup.SPEAKS_3_3 || startup == Startup.SPEAKS_3_2
                || startup == Startup.NEGOTIATES_3_0 ? session.protocolOptions : List.of();
        int speaks = startup == Startup.SPEAKS_3_3 ? 3 : startup == Startup.SPEAKS_3_2 ? 2 : 0;
        if (session.requestedMinor > 0) {
            switch (startup) {
                case REJECTS_ABOVE_3_0 -> {
                    session.send(Wire.error("FATAL", "0A000", "unsupported frontend protocol 3."
                            + session.requestedMinor + ": server supports 1.0 to 3.0"));
                    return false;
                }
                case REJECTS_ABOVE_3_0_IN_GERMAN -> {
                    session.send(Wire.error("FATAL", "0A000", "nicht unterst\u00fctztes Frontend-Protokoll 3."
                            + session.requestedMinor + ": Server unterst\u00fctzt 1.0 bis 3.0"));
                    return false;
                }
                case NEGOTIATES_3_0 -> granted = 0;
                default -> {
                    // below
                }
            }
        }
        if (session.requestedMinor > 2) {
            if (startup == Startup.CLOSES_SILENTLY_ABOVE_3_2) {
                return false;
            }
            if (startup == Startup.REJECTS_ABOVE_3_2) {
                session.send(Wire.error("FATAL", "0A000", "unsupported frontend protocol 3."
                        + session.requestedMinor + ": server supports 3.0 to 3.2"));
                return false;
            }
            if (startup == Startup.SPEAKS_3_2) {
                granted = 2;
            }
        }
        if (granted < session.requestedMinor || !unknown.isEmpty()) {
            reply.writeBytes(Wire.negotiateProtocolVersion(Math.min(session.requestedMinor, speaks), unknown));
        }
        reply.writeBytes(Wire.message('R', new byte[4]));
        reply.writeBytes(afterAuth);
        for (String[] p : new String[][] {{"server_version", "19.0"}, {"client_encoding", "UTF8"},
            {"DateStyle", "ISO, MDY"}, {"integer_datetimes", "on"}, {"standard_conforming_strings", "on"},
            {"TimeZone", "UTC"}}) {
            reply.writeBytes(Wire.parameterStatus(p[0], p[1]));
        }
        byte[] key = new byte[4 + (granted >= 2 ? 32 : 4)];
        Wire.writeInt(key, 0, session.pid);
        reply.writeBytes(Wire.message('K', key));
        reply.writeBytes(READY_FOR_QUERY);
        session.send(reply.toByteArray());
        return true;
    }

    /** Stops listening and closes every connection. */
    @Override
    public void close() throws IOException {
        listener.close();
        for (Session s : sessions) {
            s.close();
        }
        for (Socket s : silent) {
            s.close();
        }
    }

    private static byte[] cstring(String s) {
        return concat(s.getBytes(StandardCharsets.UTF_8), new byte[] {0});
    }

    private static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        for (byte[] p : parts) {
            b.writeBytes(p);
        }
        return b.toByteArray();
    }

    /** One client connection, after its startup. */
    public static final class Session {
        private final Socket plain;
        private final Socket socket;
        private final int pid;
        private final int requestedMinor;
        private final List<String> protocolOptions;
        private final OutputStream out;

        private Session(Socket plain, Socket socket, int pid, int requestedMinor, List<String> protocolOptions)
                throws IOException {
            this.plain = plain;
            this.socket = socket;
            this.pid = pid;
            this.requestedMinor = requestedMinor;
            this.protocolOptions = protocolOptions;
            this.out = socket.getOutputStream();
        }

        /** @return the {@code _pq_.} protocol options the client's StartupMessage asked for */
        public List<String> protocolOptions() {
            return protocolOptions;
        }

        /** @return the backend pid it was given in BackendKeyData */
        public int pid() {
            return pid;
        }

        /** @return the protocol minor version the client's StartupMessage asked for */
        public int requestedMinor() {
            return requestedMinor;
        }

        /**
         * Sends bytes now, between whatever else the server sends (encrypted on a TLS connection).
         *
         * @param bytes anything
         * @throws IOException if the connection is gone
         */
        public synchronized void send(byte[] bytes) throws IOException {
            out.write(bytes);
            out.flush();
        }

        /**
         * Sends bytes straight onto the TCP connection, under TLS if there is TLS: garbage in the middle of the
         * record stream.
         *
         * @param bytes anything
         * @throws IOException if the connection is gone
         */
        public synchronized void sendRaw(byte[] bytes) throws IOException {
            OutputStream raw = plain.getOutputStream();
            raw.write(bytes);
            raw.flush();
        }

        /** @return true once the connection is closed, by either side */
        public boolean isClosed() {
            return socket.isClosed();
        }

        /**
         * Closes the connection abruptly, with no message.
         *
         * @throws IOException as {@link Socket#close()}
         */
        public void close() throws IOException {
            socket.close();
            plain.close();
        }
    }
}
