package dev.poolgoaway.wire;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;

/**
 * A tiny PostgreSQL-speaking server for tests that need server behaviour no real server has yet (GoAway) or
 * should never have (broken streams). It answers the startup like a real server, then each simple Query with
 * {@link #queryReply}, and lets a test push any bytes to a connection at any time.
 */
final class ScriptedServer implements AutoCloseable {

    /** How the server answers a StartupMessage asking for more than 3.2. */
    enum Startup {
        /** A 3.3 server: accepts silently. */
        SPEAKS_3_3,
        /** A 3.2 server: NegotiateProtocolVersion down to 3.2. */
        SPEAKS_3_2,
        /** An old pooler: FATAL 0A000 and close. */
        REJECTS_ABOVE_3_2
    }

    private final ServerSocket listener;
    private final SSLContext tls;
    private final Startup startup;
    private final List<Session> sessions = new CopyOnWriteArrayList<>();
    private final AtomicInteger pids = new AtomicInteger(10_000);
    private final Thread acceptor;
    /** Bytes between AuthenticationOk and the ParameterStatus messages, for startup tests. */
    volatile byte[] afterAuth = new byte[0];
    /** The reply to every Query. */
    volatile byte[] queryReply = selectOneReply();
    /** Close the connection right after the next reply to a Query. */
    volatile boolean closeAfterReply;

    ScriptedServer(Startup startup, SSLContext tls) throws IOException {
        this.startup = startup;
        this.tls = tls;
        this.listener = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        this.acceptor = new Thread(this::acceptLoop, "scripted-server-accept");
        acceptor.setDaemon(true);
        acceptor.start();
    }

    int port() {
        return listener.getLocalPort();
    }

    String url() {
        return "jdbc:postgresql://localhost:" + port() + "/db";
    }

    List<Session> sessions() {
        return sessions;
    }

    /** The reply real PostgreSQL gives to {@code select 1}: RowDescription, DataRow, CommandComplete, Ready. */
    static byte[] selectOneReply() {
        byte[] field = Messages.concat(Messages.cstrings("x"), new byte[] {0, 0, 0, 0, 0, 0, 0, 0, 0, 23, 0, 4,
            (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, 0, 0});
        return Messages.stream().msg('T', Messages.concat(new byte[] {0, 1}, field))
                .msg('D', new byte[] {0, 1, 0, 0, 0, 1, '1'})
                .msg('C', Messages.cstrings("SELECT 1"))
                .readyForQuery().bytes();
    }

    private void acceptLoop() {
        while (!listener.isClosed()) {
            try {
                Socket s = listener.accept();
                Thread t = new Thread(() -> serve(s), "scripted-server-conn");
                t.setDaemon(true);
                t.start();
            } catch (IOException e) {
                return;
            }
        }
    }

    private void serve(Socket socket) {
        Session session = null;
        try {
            Socket s = socket;
            DataInputStream in = new DataInputStream(s.getInputStream());
            while (true) {
                int length = in.readInt();
                int code = in.readInt();
                if (code == FrontendOutputStream.SSL_REQUEST_CODE && tls != null) {
                    s.getOutputStream().write('S');
                    SSLSocket secure = (SSLSocket) tls.getSocketFactory().createSocket(s,
                            ((InetSocketAddress) s.getRemoteSocketAddress()).getHostString(), s.getPort(), true);
                    secure.setUseClientMode(false);
                    secure.startHandshake();
                    s = secure;
                    in = new DataInputStream(s.getInputStream());
                    continue;
                }
                if (code == FrontendOutputStream.SSL_REQUEST_CODE || code == FrontendOutputStream.GSSENC_REQUEST_CODE) {
                    s.getOutputStream().write('N');
                    continue;
                }
                in.readNBytes(length - 8);
                session = new Session(s, pids.incrementAndGet(), code & 0xffff);
                break;
            }
            sessions.add(session);
            if (!session.startup()) {
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
                        break;
                    }
                }
            }
        } catch (IOException e) {
            // the client went away, or the test closed the session
        } finally {
            try {
                (session != null ? session.socket : socket).close();
            } catch (IOException ignored) {
                // closing anyway
            }
        }
    }

    @Override
    public void close() throws IOException {
        listener.close();
        for (Session s : sessions) {
            s.socket.close();
        }
    }

    /** One client connection. */
    final class Session {
        final Socket socket;
        final int pid;
        final int requestedMinor;
        private final OutputStream out;

        Session(Socket socket, int pid, int requestedMinor) throws IOException {
            this.socket = socket;
            this.pid = pid;
            this.requestedMinor = requestedMinor;
            this.out = socket.getOutputStream();
        }

        /** @return false if the startup was refused */
        private boolean startup() throws IOException {
            Messages reply = Messages.stream();
            if (requestedMinor > 2) {
                if (startup == Startup.REJECTS_ABOVE_3_2) {
                    send(Messages.stream().error("FATAL", "0A000", "unsupported frontend protocol 3."
                            + requestedMinor + ": server supports 3.0 to 3.2").bytes());
                    return false;
                }
                if (startup == Startup.SPEAKS_3_2) {
                    reply.negotiate(2);
                }
            }
            reply.authOk().raw(afterAuth)
                    .parameterStatus("server_version", "19.0")
                    .parameterStatus("client_encoding", "UTF8")
                    .parameterStatus("DateStyle", "ISO, MDY")
                    .parameterStatus("integer_datetimes", "on")
                    .parameterStatus("standard_conforming_strings", "on")
                    .parameterStatus("TimeZone", "UTC")
                    .backendKeyData(pid, requestedMinor >= 2 ? 32 : 4)
                    .readyForQuery();
            send(reply.bytes());
            return true;
        }

        /** Sends bytes now, between whatever else the server sends. */
        synchronized void send(byte[] bytes) throws IOException {
            out.write(bytes);
            out.flush();
        }

        void close() throws IOException {
            socket.close();
        }
    }
}
