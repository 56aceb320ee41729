package dev.poolgoaway.testkit;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;

import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One client connection through the proxy: the startup handshake in the server's role, then two pumps. Client to
 * server is a plain copy. Server to client is framed, so that whatever the proxy injects (GoAway, a FATAL error,
 * a ParameterStatus) lands between two messages: the pump holds {@link #clientWrite} for exactly one message.
 */
final class ProxySession {

    private static final Logger log = LoggerFactory.getLogger(ProxySession.class);
    /** An ErrorResponse longer than this is passed on as it is, never rewritten. */
    private static final int MAX_REWRITTEN_ERROR = 64 * 1024;
    private static final int CONNECT_TIMEOUT_MILLIS = 10_000;
    static final int INJECT_TIMEOUT_SECONDS = 5;

    final long id;
    private final GoAwayProxy proxy;
    private final SSLContext tls;
    private final InetSocketAddress clientAddress;
    private final Instant connectedAt;
    private final AtomicLong bytesToServer = new AtomicLong();
    private final AtomicLong bytesToClient = new AtomicLong();
    private final ReentrantLock clientWrite = new ReentrantLock();
    private final AtomicBoolean closed = new AtomicBoolean();
    /** The server-to-client pump's buffer (that thread only). */
    private final byte[] pumpBuffer = new byte[8192];

    private volatile Socket client;
    private volatile Socket upstream;
    private volatile InetSocketAddress target;
    private volatile InetSocketAddress upstreamAddress;
    private volatile OutputStream toClient;
    private volatile int protocolMinor = -1;
    /** The client asked for the GoAway extension (the {@link GoAwayProxy.Dialect#EXTENSION} dialect only). */
    private volatile boolean extensionRequested;
    private volatile boolean secure;
    private volatile boolean ready;
    /** A GoAway asked for; sent as soon as the connection is ready (a backend sends it at its next read). */
    private final AtomicBoolean goAwayPending = new AtomicBoolean();
    private volatile int backendPid;
    private volatile byte[] cancelKey;
    private volatile String cancelMessage;
    private volatile Instant goAwaySentAt;
    private volatile Instant closedAt;

    ProxySession(long id, GoAwayProxy proxy, Socket client, SSLContext tls) {
        this.id = id;
        this.proxy = proxy;
        this.client = client;
        this.tls = tls;
        this.clientAddress = (InetSocketAddress) client.getRemoteSocketAddress();
        this.connectedAt = Instant.now();
    }

    /** Runs the connection on the calling thread; the server-to-client pump gets a thread of its own. */
    void run() {
        try {
            DataInputStream in = startup();
            if (in == null) {
                return;
            }
            Thread pump = proxy.newThread(this::serverToClient, "session-" + id + "-server");
            pump.start();
            copyClientToServer(in);
        } catch (IOException e) {
            log.debug("connection {} from {} ended: {}", id, clientAddress, e.toString());
        } finally {
            close();
        }
    }

    // ---- startup, in the server's role --------------------------------------------------------------------

    /** @return the client's input once forwarding can start, or null if the connection is done */
    private DataInputStream startup() throws IOException {
        DataInputStream in = new DataInputStream(client.getInputStream());
        while (true) {
            byte[] header = Wire.readExactly(in, 8);
            if (header == null) {
                return null;
            }
            int length = Wire.readInt(header, 0);
            int code = Wire.readInt(header, 4);
            if (length < 8 || length > Wire.MAX_STARTUP_LENGTH) {
                refuse("08P01", "invalid length of startup packet");
                return null;
            }
            if (code == Wire.SSL_REQUEST || code == Wire.GSSENC_REQUEST) {
                if (length != 8) {
                    refuse("08P01", "invalid length of startup packet");
                    return null;
                }
                boolean offerTls = code == Wire.SSL_REQUEST && tls != null && !secure;
                client.getOutputStream().write(offerTls ? 'S' : 'N');
                client.getOutputStream().flush();
                if (offerTls) {
                    in = new DataInputStream(secureClient().getInputStream());
                }
                continue;
            }
            byte[] body = new byte[length - 8];
            in.readFully(body);
            if (code == Wire.CANCEL_REQUEST) {
                proxy.forwardCancel(body);
                return null;
            }
            if (code >>> 16 != 3) {
                refuse("0A000", "unsupported frontend protocol " + (code >>> 16) + "." + (code & 0xffff)
                        + ": server supports 3.0 to 3." + proxyMinor());
                return null;
            }
            protocolMinor = code & 0xffff;
            if (proxy.dialect() == GoAwayProxy.Dialect.EXTENSION) {
                // The proxy implements the extension: the client's request for it is the proxy's, not the server's.
                String value = Wire.startupParameters(body).get(proxy.extension());
                extensionRequested = value != null
                        && !List.of("off", "false", "0").contains(value.toLowerCase(Locale.ROOT));
                body = Wire.withoutParameter(body, proxy.extension());
                header = header.clone();
                Wire.writeInt(header, 0, 8 + body.length);
            }
            // The target is set before the check: a smart shutdown that starts in between counts this connection.
            target = proxy.upstream();
            if (proxy.shuttingDown(target)) {
                refuse("57P03", "the database system is shutting down");
                return null;
            }
            slowStart();
            connectUpstream(header, body);
            if (proxy.goAwayOnConnect()) {
                // Sent once the connection is ready, as the leaving server sends it to a backend it just started.
                goAway();
            }
            return in;
        }
    }

    /** A slow server: the connection waits {@link GoAwayProxy#connectDelay(Duration)} before it reaches it. */
    private void slowStart() throws IOException {
        long delay = proxy.connectDelay().toNanos();
        if (delay == 0) {
            return;
        }
        long end = System.nanoTime() + delay;
        // In steps, so that closing the proxy (or the connection) does not wait for the whole delay.
        for (long left = delay; left > 0 && !closed.get(); left = end - System.nanoTime()) {
            try {
                TimeUnit.NANOSECONDS.sleep(Math.min(left, TimeUnit.MILLISECONDS.toNanos(50)));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while slowed", e);
            }
        }
        if (closed.get()) {
            throw new IOException("connection " + id + " closed while slowed");
        }
    }

    private Socket secureClient() throws IOException {
        SSLSocket s = (SSLSocket) tls.getSocketFactory().createSocket(client, clientAddress.getHostString(),
                clientAddress.getPort(), true);
        s.setUseClientMode(false);
        s.startHandshake();
        client = s;
        secure = true;
        return s;
    }

    private void refuse(String sqlState, String message) throws IOException {
        proxy.event(ProxyEvent.Kind.REFUSED, id, sqlState + " " + message);
        OutputStream out = client.getOutputStream();
        out.write(Wire.error("FATAL", sqlState, message));
        out.flush();
    }

    /** @return the newest protocol minor version the proxy's dialect speaks */
    private int proxyMinor() {
        return proxy.dialect() == GoAwayProxy.Dialect.PROTOCOL_3_3 ? 3 : 2;
    }

    /** Opens the upstream connection and sends it the client's StartupMessage, at most at the dialect's version. */
    private void connectUpstream(byte[] header, byte[] body) throws IOException {
        InetSocketAddress resolved = new InetSocketAddress(target.getHostString(), target.getPort());
        Socket s = new Socket();
        try {
            s.setTcpNoDelay(true);
            s.connect(resolved, CONNECT_TIMEOUT_MILLIS);
        } catch (IOException e) {
            s.close();
            refuse("08006", "the proxy could not reach the server " + target.getHostString() + ":"
                    + target.getPort() + ": " + e.getMessage());
            throw e;
        }
        upstream = s;
        upstreamAddress = resolved;
        if (closed.get()) {
            // close() ran while we were connecting and could not see this socket.
            s.close();
            throw new IOException("connection " + id + " closed while connecting upstream");
        }
        byte[] startup = Arrays.copyOf(header, 8 + body.length);
        Wire.writeInt(startup, 4, (3 << 16) | Math.min(protocolMinor, proxyMinor()));
        System.arraycopy(body, 0, startup, 8, body.length);
        OutputStream up = s.getOutputStream();
        up.write(startup);
        up.flush();
        bytesToServer.addAndGet(startup.length);
        toClient = new BufferedOutputStream(client.getOutputStream(), 8192);
    }

    // ---- the pumps ----------------------------------------------------------------------------------------

    private void copyClientToServer(InputStream in) throws IOException {
        OutputStream up = upstream.getOutputStream();
        byte[] buf = new byte[8192];
        for (int n; (n = in.read(buf)) >= 0; ) {
            up.write(buf, 0, n);
            up.flush();
            bytesToServer.addAndGet(n);
        }
    }

    private void serverToClient() {
        try {
            DataInputStream up = new DataInputStream(new BufferedInputStream(upstream.getInputStream(), 8192));
            boolean startup = true;
            boolean negotiated = false;
            while (true) {
                int type = up.read();
                if (type < 0) {
                    return;
                }
                int length = up.readInt();
                if (length < 4) {
                    throw new IOException("the server sent a '" + (char) type + "' message with length " + length);
                }
                if (startup && !negotiated && type != 'v' && protocolMinor > proxyMinor()) {
                    // The upstream was asked for what the proxy speaks and said nothing: the proxy tells the client.
                    send(Wire.negotiateProtocolVersion(proxyMinor(), List.of()));
                }
                negotiated = true;
                if (startup && type == 'v') {
                    negotiateProtocolVersion(up, length);
                } else if (type == 'K') {
                    backendKeyData(up, length);
                } else if (type == 'E' && cancelMessage != null && length <= MAX_REWRITTEN_ERROR) {
                    cancelError(up, length);
                } else {
                    forward(up, type, length);
                }
                if (type == 'Z') {
                    // A cancel message belongs to the statement running when it was sent, and to no later one.
                    cancelMessage = null;
                }
                if (type == 'Z' && startup) {
                    startup = false;
                    ready = true;
                    proxy.event(ProxyEvent.Kind.CONNECTED, id, "to " + upstreamAddress.getHostString() + ":"
                            + upstreamAddress.getPort() + " as 3." + protocolMinor + (secure ? " over TLS" : ""));
                    sendPendingGoAway();
                }
            }
        } catch (IOException e) {
            log.debug("connection {}: server side ended: {}", id, e.toString());
        } finally {
            close();
        }
    }

    /** Passes one message on, holding the client stream for its whole length. */
    private void forward(DataInputStream up, int type, int length) throws IOException {
        clientWrite.lock();
        try {
            toClient.write(type);
            writeInt(toClient, length);
            for (int remaining = length - 4; remaining > 0; ) {
                int n = up.read(pumpBuffer, 0, Math.min(pumpBuffer.length, remaining));
                if (n < 0) {
                    throw new EOFException("the server closed the connection inside a message");
                }
                toClient.write(pumpBuffer, 0, n);
                remaining -= n;
            }
            bytesToClient.addAndGet(1L + length);
            if (up.available() == 0) {
                toClient.flush();
            }
        } finally {
            clientWrite.unlock();
        }
    }

    /**
     * The server answered a newer version than it speaks. To a client asking for the dialect's version or more the
     * proxy is a server of that version (3.3 for {@link GoAwayProxy.Dialect#PROTOCOL_3_3}), so a plain downgrade is
     * hidden; unsupported options still reach the client, showing the version the proxy speaks.
     */
    private void negotiateProtocolVersion(DataInputStream up, int length) throws IOException {
        byte[] body = new byte[length - 4];
        up.readFully(body);
        int speaks = proxyMinor();
        if (protocolMinor < speaks) {
            // Clients asking for less hear exactly what the server says.
            send(Wire.message('v', body));
            return;
        }
        int unsupported = body.length >= 8 ? Wire.readInt(body, 4) : 0;
        if (unsupported == 0 && protocolMinor == speaks) {
            return;
        }
        Wire.writeInt(body, 0, (3 << 16) | speaks);
        send(Wire.message('v', body));
    }

    private void backendKeyData(DataInputStream up, int length) throws IOException {
        byte[] body = new byte[length - 4];
        up.readFully(body);
        if (body.length >= 4) {
            backendPid = Wire.readInt(body, 0);
            cancelKey = Arrays.copyOfRange(body, 4, body.length);
        }
        send(Wire.message('K', body));
    }

    /**
     * {@code pg_cancel_backend(pid, msg)}: the cancel's error carries the admin's message, appended to the primary
     * text or as DETAIL, as the proxy is built.
     */
    private void cancelError(DataInputStream up, int length) throws IOException {
        byte[] body = new byte[length - 4];
        up.readFully(body);
        String message = cancelMessage;
        boolean inDetail = proxy.adminMessages() == GoAwayProxy.AdminMessageFormat.DETAIL;
        ByteArrayOutputStream rewritten = new ByteArrayOutputStream(body.length + 160);
        boolean isCancel = false;
        int p = 0;
        while (p < body.length && body[p] != 0) {
            byte code = body[p++];
            int end = p;
            while (end < body.length && body[end] != 0) {
                end++;
            }
            String value = new String(body, p, end - p, StandardCharsets.UTF_8);
            if (code == 'C' && "57014".equals(value)) {
                isCancel = true;
            }
            if (!(inDetail && code == 'D')) {
                rewritten.write(code);
                rewritten.writeBytes((code == 'M' && !inDetail ? value + ": " + message : value)
                        .getBytes(StandardCharsets.UTF_8));
                rewritten.write(0);
            }
            p = end + 1;
        }
        if (inDetail) {
            rewritten.write('D');
            rewritten.writeBytes(message.getBytes(StandardCharsets.UTF_8));
            rewritten.write(0);
        }
        rewritten.write(0);
        if (isCancel) {
            cancelMessage = null;
            send(Wire.message('E', rewritten.toByteArray()));
        } else {
            send(Wire.message('E', body));
        }
    }

    // ---- what the proxy does to the connection ------------------------------------------------------------

    /**
     * Writes bytes to the client between two server messages.
     *
     * @throws IOException also if the client has not read for {@value #INJECT_TIMEOUT_SECONDS} s: a control call
     *                     must not hang on one stuck client
     */
    void send(byte[] bytes) throws IOException {
        lockClient();
        try {
            toClient.write(bytes);
            toClient.flush();
            bytesToClient.addAndGet(bytes.length);
        } finally {
            clientWrite.unlock();
        }
    }

    /**
     * Sends GoAway if the client may have it in the proxy's dialect; a connection still in startup gets it once
     * ready, as a backend sends it at its next read.
     *
     * @return true if sent or scheduled
     */
    boolean goAway() {
        if (!goAwayCapable() || closed.get()) {
            return false;
        }
        goAwayPending.set(true);
        if (ready) {
            sendPendingGoAway();
        }
        return true;
    }

    /** Sends the GoAway asked for, once, by whichever thread gets here first (control call or pump). */
    private void sendPendingGoAway() {
        if (!goAwayPending.getAndSet(false)) {
            return;
        }
        try {
            send(Wire.GO_AWAY);
            if (goAwaySentAt == null) {
                goAwaySentAt = Instant.now();
            }
            proxy.event(ProxyEvent.Kind.GOAWAY_SENT, id, "pid " + backendPid);
        } catch (IOException e) {
            log.debug("connection {}: GoAway not delivered: {}", id, e.toString());
        }
    }

    boolean disconnectRequested() {
        if (!ready || closed.get()) {
            return false;
        }
        try {
            send(Wire.parameterStatus("disconnect_requested", "on"));
            proxy.event(ProxyEvent.Kind.DISCONNECT_REQUESTED_SENT, id, "pid " + backendPid);
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    /**
     * {@code pg_terminate_backend(pid, timeout, msg)}: the admin's words appended to the primary text (the patch of
     * 2025) or as DETAIL (v7 of June 2026), as the proxy is built.
     */
    void terminate(String message) {
        String text = "terminating connection due to administrator command";
        String admin = message == null || message.isEmpty() ? "" : Wire.adminMessage(message);
        boolean inDetail = proxy.adminMessages() == GoAwayProxy.AdminMessageFormat.DETAIL;
        byte[] error = inDetail ? Wire.error("FATAL", "57P01", text, admin)
                : Wire.error("FATAL", "57P01", admin.isEmpty() ? text : text + ": " + admin);
        proxy.event(ProxyEvent.Kind.TERMINATED, id, text + (admin.isEmpty() ? "" : ": " + admin));
        try {
            lockClient();
        } catch (IOException e) {
            close();
            return;
        }
        try {
            // Under the lock: nothing the server sends may follow the FATAL error.
            toClient.write(error);
            toClient.flush();
        } catch (IOException e) {
            log.debug("connection {}: termination not delivered: {}", id, e.toString());
        } finally {
            close();
            clientWrite.unlock();
        }
    }

    /**
     * Cancels the running statement of this backend at the real server; its 57014 error gets the message.
     *
     * @return false if the connection has no cancel key yet
     */
    boolean cancel(String message) throws IOException {
        byte[] key = cancelKey;
        if (key == null) {
            return false;
        }
        cancelMessage = Wire.adminMessage(message);
        byte[] request = new byte[12 + key.length];
        Wire.writeInt(request, 0, request.length);
        Wire.writeInt(request, 4, Wire.CANCEL_REQUEST);
        Wire.writeInt(request, 8, backendPid);
        System.arraycopy(key, 0, request, 12, key.length);
        sendCancel(upstreamAddress, request);
        proxy.event(ProxyEvent.Kind.CANCELED, id, "pid " + backendPid + ": " + cancelMessage);
        return true;
    }

    /** Whether a client's CancelRequest body (pid, key) names this backend. */
    boolean matches(byte[] cancelBody) {
        byte[] key = cancelKey;
        return key != null && cancelBody.length == 4 + key.length && Wire.readInt(cancelBody, 0) == backendPid
                && Arrays.equals(key, Arrays.copyOfRange(cancelBody, 4, cancelBody.length));
    }

    InetSocketAddress upstreamAddress() {
        return upstreamAddress;
    }

    /** @return the server this connection was sent to, as the proxy named it (null before startup) */
    InetSocketAddress target() {
        return target;
    }

    private void lockClient() throws IOException {
        try {
            if (!clientWrite.tryLock(INJECT_TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                throw new IOException("connection " + id + ": the client has not read for "
                        + INJECT_TIMEOUT_SECONDS + " s");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        }
    }

    static void sendCancel(InetSocketAddress server, byte[] request) throws IOException {
        try (Socket s = new Socket()) {
            s.connect(server, CONNECT_TIMEOUT_MILLIS);
            s.getOutputStream().write(request);
            s.getOutputStream().flush();
            // The server answers a cancel by closing: wait for that, so the cancel has arrived when we return.
            s.setSoTimeout(CONNECT_TIMEOUT_MILLIS);
            s.getInputStream().read();
        }
    }

    int backendPid() {
        return backendPid;
    }

    boolean isOpen() {
        return !closed.get();
    }

    void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        closedAt = Instant.now();
        closeQuietly(client);
        closeQuietly(upstream);
        proxy.event(ProxyEvent.Kind.CLOSED, id, "pid " + backendPid);
        proxy.ended(this);
    }

    /** @return whether the dialect sends this client GoAway */
    private boolean goAwayCapable() {
        return switch (proxy.dialect()) {
            case PROTOCOL_3_3 -> protocolMinor >= 3;
            case EXTENSION -> extensionRequested;
            case NONE -> false;
        };
    }

    ProxiedConnection facts() {
        return new ProxiedConnection(id, clientAddress, upstreamAddress, backendPid, protocolMinor, goAwayCapable(),
                secure,
                bytesToServer.get(), bytesToClient.get(), connectedAt, Optional.ofNullable(goAwaySentAt),
                Optional.ofNullable(closedAt));
    }

    private static void writeInt(OutputStream out, int v) throws IOException {
        out.write(v >>> 24);
        out.write(v >>> 16);
        out.write(v >>> 8);
        out.write(v);
    }

    private static void closeQuietly(Socket s) {
        if (s != null) {
            try {
                s.close();
            } catch (IOException ignored) {
                // closing anyway
            }
        }
    }
}
