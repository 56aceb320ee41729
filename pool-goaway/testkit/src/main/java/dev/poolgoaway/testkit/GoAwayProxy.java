package dev.poolgoaway.testkit;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Predicate;

import javax.net.ssl.SSLContext;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A PostgreSQL wire-protocol proxy that speaks GoAway: a stand-in for a PostgreSQL with the GoAway patch (and the
 * admin-message patch), built over a real server, for tests and switchover drills.
 *
 * <p>It listens on localhost and forwards each client to the current upstream. To a 3.3 client it is a 3.3
 * server: it asks the upstream for at most 3.3 and hides a downgrade (a 3.3 client over PostgreSQL 18 sees no
 * NegotiateProtocolVersion); 3.0 and 3.2 clients get exactly what the upstream says. Cancel requests, 3.2 keys
 * included, reach the right upstream backend. The server-to-client stream is framed, so everything the proxy
 * injects lands between two messages.
 *
 * <p>Controls, all thread-safe:
 * <ul>
 *   <li>{@link #goAway()} and friends: GoAway to 3.3 clients (to all, to some, to one backend pid), as a smart
 *       shutdown and the later {@code pg_goaway_backend(pid)} do;</li>
 *   <li>{@link #smartShutdown()}: GoAway to every client of a server, new connections to it refused with
 *       {@code FATAL 57P03 the database system is shutting down}, existing ones keep working, a future completed
 *       when the last one leaves;</li>
 *   <li>{@link #terminate(int, String)} and {@link #cancel(int, String)}: {@code pg_terminate_backend(pid,
 *       timeout, msg)} and {@code pg_cancel_backend(pid, msg)} from the admin-message patch;</li>
 *   <li>{@link #disconnectRequested(Predicate)}: ParameterStatus {@code disconnect_requested=on}, the competing
 *       upstream proposal;</li>
 *   <li>{@link #retarget(String, int)}: new connections go to another server, old ones stay: the proxy plays the
 *       load balancer and the old server of a switchover at once;</li>
 *   <li>the faults of a switchover gone wrong, for new connections only: {@link #refuseConnections(boolean)}
 *       (connection refused, as a server that is down), {@link #connectDelay(Duration)} (a slow server) and
 *       {@link #goAwayOnConnect(boolean)} (a leaving server that asks its new connections to leave too);</li>
 *   <li>{@link #connections()} and {@link #timeline()}: what happened, per connection and in order.</li>
 * </ul>
 *
 * <p>A client that breaks the startup protocol gets an error and is dropped alone. {@link #close()} ends every
 * socket and thread the proxy started.
 */
public final class GoAwayProxy implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(GoAwayProxy.class);
    /** Closed connections kept in {@link #connections()}, at most; the oldest are forgotten first. */
    static final int MAX_CLOSED_KEPT = 10_000;
    /** Events kept in {@link #timeline()}, at most: a soak's worth of drills, not a leak. */
    static final int MAX_EVENTS_KEPT = 100_000;

    private final String name;
    private final SSLContext tls;
    private final Dialect dialect;
    private final AdminMessageFormat adminMessages;
    private final String extension;
    private final InetAddress address;
    /** Replaced by a new one when connections are accepted again after {@link #refuseConnections(boolean)}. */
    private volatile ServerSocket listener;
    /** The thread that accepts on {@link #listener}. */
    private volatile Thread acceptor;
    private final String host;
    private final AtomicReference<InetSocketAddress> upstream;
    private final AtomicLong ids = new AtomicLong();
    private final List<ProxySession> sessions = new CopyOnWriteArrayList<>();
    private final List<ProxiedConnection> closedFacts = new ArrayList<>();
    /** The newest {@value #MAX_EVENTS_KEPT} events; the oldest are forgotten first. Guarded by itself. */
    private final ArrayDeque<ProxyEvent> timeline = new ArrayDeque<>();
    private final List<Thread> threads = new CopyOnWriteArrayList<>();
    private final Map<InetSocketAddress, SmartShutdown> shutdowns = new HashMap<>();
    private volatile boolean closed;
    private volatile Duration connectDelay = Duration.ZERO;
    private volatile boolean goAwayOnConnect;

    private GoAwayProxy(Builder b) throws IOException {
        this.name = b.name;
        this.tls = b.tls;
        this.dialect = b.dialect;
        this.adminMessages = b.adminMessages;
        this.extension = b.extension;
        this.upstream = new AtomicReference<>(Objects.requireNonNull(b.upstream, "upstream"));
        this.address = b.address;
        this.listener = new ServerSocket(b.port, 128, b.address);
        this.host = b.address.equals(InetAddress.getLoopbackAddress()) ? "localhost"
                : b.address.getHostAddress().contains(":") ? "[" + b.address.getHostAddress() + "]"
                : b.address.getHostAddress();
        ServerSocket first = listener;
        this.acceptor = newThread(() -> acceptLoop(first), "accept");
        acceptor.start();
        log.info("{} listening on {}:{}, forwarding to {}:{}{}, GoAway by {}, admin messages {}", name, host(), port(),
                b.upstream.getHostString(), b.upstream.getPort(), tls != null ? ", TLS offered" : "", dialect,
                adminMessages);
    }

    /** @return a builder */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * Which upstream design of GoAway the proxy plays (neither is in a PostgreSQL release; pgsql-hackers thread "Add
     * GoAway protocol message for graceful but fast server shutdown/switchover").
     */
    public enum Dialect {
        /**
         * The patch of October 2025 (v2): GoAway to clients of protocol 3.3. To a 3.3 client the proxy is a 3.3
         * server; a {@code _pq_.goaway} request reaches the upstream, which lists it as unsupported, as that patch's
         * server does.
         */
        PROTOCOL_3_3,
        /**
         * The revisions since January 2026 (v8, March 2026): GoAway to clients that request the {@code _pq_.goaway}
         * protocol extension, which the proxy acknowledges by not listing it; it speaks protocol 3.2 at most, like
         * PostgreSQL 19.
         */
        EXTENSION,
        /** Neither: a server that never sends GoAway (PostgreSQL 18, 19), speaking 3.2 at most. */
        NONE
    }

    /**
     * Where {@link #terminate(int, String)} and {@link #cancel(int, String)} put the administrator's words, after the
     * terminate-with-message patches on pgsql-hackers.
     */
    public enum AdminMessageFormat {
        /** Appended to the primary text, {@code ...administrator command: <msg>} (the patch of 2025). */
        APPENDED,
        /** In the error's DETAIL field, the primary text unchanged (v7, June 2026). */
        DETAIL
    }

    Dialect dialect() {
        return dialect;
    }

    AdminMessageFormat adminMessages() {
        return adminMessages;
    }

    String extension() {
        return extension;
    }

    /** Builds a {@link GoAwayProxy}. */
    public static final class Builder {
        private InetSocketAddress upstream;
        private SSLContext tls;
        private int port;
        private InetAddress address = InetAddress.getLoopbackAddress();
        private String name = "goaway-proxy";
        private Dialect dialect = Dialect.PROTOCOL_3_3;
        private AdminMessageFormat adminMessages = AdminMessageFormat.APPENDED;
        private String extension = "_pq_.goaway";

        private Builder() {
        }

        /**
         * @param dialect which design of GoAway to play; {@link Dialect#PROTOCOL_3_3} by default
         * @return this
         */
        public Builder dialect(Dialect dialect) {
            this.dialect = Objects.requireNonNull(dialect, "dialect");
            return this;
        }

        /**
         * @param format where admin messages go; {@link AdminMessageFormat#APPENDED} by default
         * @return this
         */
        public Builder adminMessages(AdminMessageFormat format) {
            this.adminMessages = Objects.requireNonNull(format, "format");
            return this;
        }

        /**
         * @param parameter the startup parameter that requests the extension in the {@link Dialect#EXTENSION}
         *                  dialect; {@code _pq_.goaway} by default
         * @return this
         * @throws IllegalArgumentException if it is not a {@code _pq_.} parameter
         */
        public Builder extension(String parameter) {
            if (!parameter.startsWith("_pq_.") || parameter.length() == 5) {
                throw new IllegalArgumentException("a protocol extension's parameter starts with _pq_.: " + parameter);
            }
            this.extension = parameter;
            return this;
        }

        /**
         * @param host the server's host
         * @param port the server's port
         * @return this
         */
        public Builder upstream(String host, int port) {
            this.upstream = InetSocketAddress.createUnresolved(host, port);
            return this;
        }

        /**
         * @param server the server
         * @return this
         */
        public Builder upstream(PostgresUpstream server) {
            return upstream(server.host(), server.port());
        }

        /**
         * Offers TLS to clients: SSLRequest is answered 'S' and the handshake uses this context. Without it
         * clients get 'N' (so {@code sslmode=prefer} clients go on in plain text).
         *
         * @param context a server-side TLS context, for instance {@link TestCertificates#serverContext()}
         * @return this
         */
        public Builder tls(SSLContext context) {
            this.tls = context;
            return this;
        }

        /**
         * @param port the port to listen on; 0 (the default) picks a free one
         * @return this
         */
        public Builder port(int port) {
            if (port < 0 || port > 65535) {
                throw new IllegalArgumentException("port " + port + " is not a TCP port");
            }
            this.port = port;
            return this;
        }

        /**
         * @param address the loopback address to listen on ({@code 127.0.0.1}, {@code 127.0.0.2}, {@code ::1});
         *                the JVM's loopback address by default. The proxy is a drill tool for one host, not a
         *                balancer for a network: other addresses are refused.
         * @return this
         * @throws IllegalArgumentException if the address is not a loopback address
         */
        public Builder listen(InetAddress address) {
            if (!address.isLoopbackAddress()) {
                throw new IllegalArgumentException("the proxy listens on a loopback address only (127.0.0.0/8, ::1), not "
                        + address.getHostAddress());
            }
            this.address = address;
            return this;
        }

        /**
         * @param name a name for threads and log lines
         * @return this
         */
        public Builder name(String name) {
            this.name = Objects.requireNonNull(name, "name");
            return this;
        }

        /**
         * Starts listening on localhost (or the {@link #listen(InetAddress) loopback address} given).
         *
         * @return the running proxy
         * @throws IOException if it cannot listen
         * @throws NullPointerException if no upstream was given
         */
        public GoAwayProxy start() throws IOException {
            return new GoAwayProxy(this);
        }
    }

    // ---- where it is ------------------------------------------------------------------------------------------

    /** @return the host clients connect to */
    public String host() {
        return host;
    }

    /** @return the port clients connect to */
    public int port() {
        return listener.getLocalPort();
    }

    /**
     * @param database a database name
     * @return a pgjdbc URL for it through the proxy
     */
    public String jdbcUrl(String database) {
        return "jdbc:postgresql://" + host() + ":" + port() + "/" + database;
    }

    // ---- controls ---------------------------------------------------------------------------------------------

    /**
     * GoAway to every 3.3 client, as a smart shutdown sends it (without refusing new connections).
     *
     * @return how many connections it was sent (or scheduled, for one still in startup) to
     */
    public int goAway() {
        return goAway(c -> true);
    }

    /**
     * GoAway to the 3.3 clients whose facts match.
     *
     * @param which selects connections by their facts
     * @return how many connections it was sent to
     */
    public int goAway(Predicate<ProxiedConnection> which) {
        return toEach(which, ProxySession::goAway);
    }

    /**
     * GoAway to one backend, like {@code pg_goaway_backend(pid)}.
     *
     * @param pid the upstream backend's pid
     * @return true if a 3.3 connection with that pid got it
     */
    public boolean goAway(int pid) {
        return goAway(c -> c.backendPid() == pid) > 0;
    }

    /**
     * Smart shutdown of the server new connections go to now, as {@code pg_ctl stop -m smart} on it: see
     * {@link #smartShutdown(String, int)}.
     *
     * @return completes when the last client connection to that server has ended
     */
    public CompletableFuture<ShutdownCompletion> smartShutdown() {
        InetSocketAddress server = upstream.get();
        return smartShutdown(server.getHostString(), server.getPort());
    }

    /**
     * Smart shutdown of one server behind the proxy: GoAway to every client connected to it, new connections that
     * would go to it refused with {@code FATAL 57P03 the database system is shutting down}, existing connections
     * keep working. After a {@link #retarget} new connections go to the new server and are not refused: the
     * switchover of a drill. Calling it again for the same server returns the same future.
     *
     * @param host the server's host, as given to the builder or {@link #retarget}
     * @param port its port
     * @return completes when the last client connection to that server has ended
     */
    public CompletableFuture<ShutdownCompletion> smartShutdown(String host, int port) {
        InetSocketAddress server = InetSocketAddress.createUnresolved(host, port);
        SmartShutdown shutdown;
        synchronized (shutdowns) {
            shutdown = shutdowns.get(server);
            if (shutdown != null) {
                return shutdown.done;
            }
            int open = (int) sessions.stream().filter(s -> s.isOpen() && server.equals(s.target())).count();
            shutdown = new SmartShutdown(server, Instant.now(), open);
            shutdowns.put(server, shutdown);
            event(ProxyEvent.Kind.SMART_SHUTDOWN, 0, host + ":" + port + " with " + open + " connections open");
        }
        for (ProxySession s : sessions) {
            if (s.isOpen() && server.equals(s.target())) {
                s.goAway();
            }
        }
        completeShutdowns();
        return shutdown.done;
    }

    /**
     * Smart shutdown of one server behind the proxy: see {@link #smartShutdown(String, int)}.
     *
     * @param server the server
     * @return completes when the last client connection to it has ended
     */
    public CompletableFuture<ShutdownCompletion> smartShutdown(PostgresUpstream server) {
        return smartShutdown(server.host(), server.port());
    }

    /**
     * Smart shutdown of one server, waiting until its last client connection has ended: a recipe's switchover in
     * one call. A failure says what it saw, so a pool that does not drain (pool-goaway not installed, or the
     * new server refusing the pool's replacements, for example green without the application's schema) is told
     * apart from a slow one.
     *
     * @param server  the server
     * @param timeout how long to wait
     * @return how the shutdown went
     * @throws AssertionError if connections are still open to the server after the timeout:
     *                        "20 of 20 connections still on host:port after 30 s"
     */
    public ShutdownCompletion awaitSmartShutdown(PostgresUpstream server, Duration timeout) {
        CompletableFuture<ShutdownCompletion> done = smartShutdown(server);
        try {
            return done.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            InetSocketAddress target = InetSocketAddress.createUnresolved(server.host(), server.port());
            long still = sessions.stream().filter(s -> s.isOpen() && target.equals(s.target())).count();
            int atRequest;
            synchronized (shutdowns) {
                atRequest = shutdowns.get(target).connections;
            }
            throw new AssertionError(still + " of " + atRequest + " connections still on " + server.host() + ":"
                    + server.port() + " after " + timeout.toSeconds() + " s (is pool-goaway installed in the "
                    + "pool, and does the new server accept its connections?)", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted waiting for the smart shutdown of " + server, e);
        } catch (ExecutionException e) {
            throw new AssertionError("the smart shutdown of " + server + " failed", e.getCause());
        }
    }

    /**
     * Terminates a backend with a message, like {@code pg_terminate_backend(pid, timeout, msg)}: the client gets
     * {@code FATAL 57P01 terminating connection due to administrator command: <msg>} (the message cut to 127
     * bytes, as the server does) and the connection is closed.
     *
     * @param pid     the upstream backend's pid
     * @param message the admin's message; empty for the plain text
     * @return true if a connection with that pid was open
     */
    public boolean terminate(int pid, String message) {
        for (ProxySession s : sessions) {
            if (s.isOpen() && s.backendPid() == pid) {
                s.terminate(message);
                return true;
            }
        }
        return false;
    }

    /**
     * Cancels the statement a backend is running, like {@code pg_cancel_backend(pid, msg)}: the real server
     * cancels it and the client's {@code ERROR 57014 canceling statement due to user request} ends with
     * {@code : <msg>}. Like the server, it does nothing to an idle backend.
     *
     * @param pid     the upstream backend's pid
     * @param message the admin's message
     * @return true if the cancel was delivered to the server for an open connection with that pid
     * @throws IOException if the server could not be reached
     */
    public boolean cancel(int pid, String message) throws IOException {
        for (ProxySession s : sessions) {
            if (s.isOpen() && s.backendPid() == pid) {
                return s.cancel(message);
            }
        }
        return false;
    }

    /**
     * Reports {@code disconnect_requested = on} through ParameterStatus to the clients whose facts match (the
     * competing upstream proposal for the same signal).
     *
     * @param which selects connections by their facts
     * @return how many connections it was sent to
     */
    public int disconnectRequested(Predicate<ProxiedConnection> which) {
        return toEach(which, ProxySession::disconnectRequested);
    }

    /** Does {@code action} to every open connection {@code which} selects; returns how many it succeeded for. */
    private int toEach(Predicate<ProxiedConnection> which, Predicate<ProxySession> action) {
        int n = 0;
        for (ProxySession s : sessions) {
            if (s.isOpen() && which.test(s.facts()) && action.test(s)) {
                n++;
            }
        }
        return n;
    }

    /**
     * New connections go to another server from now on; open ones stay where they are.
     *
     * @param host the new server's host
     * @param port its port
     */
    public void retarget(String host, int port) {
        upstream.set(InetSocketAddress.createUnresolved(host, port));
        event(ProxyEvent.Kind.RETARGETED, 0, host + ":" + port);
    }

    /**
     * New connections go to another server from now on; open ones stay where they are.
     *
     * @param server the new server
     */
    public void retarget(PostgresUpstream server) {
        retarget(server.host(), server.port());
    }

    /**
     * Refuses new connections at the TCP level, as a server that is down or a host with nothing listening: the
     * listening socket is closed, so the client's connect fails with "connection refused"; open connections keep
     * working. {@code false} listens again, on the same port.
     *
     * @param refuse true to refuse, false to accept again
     * @throws IOException if the port cannot be listened on again
     */
    public synchronized void refuseConnections(boolean refuse) throws IOException {
        boolean refusing = listener.isClosed();
        if (closed || refuse == refusing) {
            return;
        }
        if (refuse) {
            listener.close();
            // The kernel keeps listening until the thread blocked in accept() has left it.
            try {
                acceptor.join(5_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while closing the listener", e);
            }
        } else {
            ServerSocket again = new ServerSocket();
            again.setReuseAddress(true);
            again.bind(new InetSocketAddress(address, port()), 128);
            listener = again;
            acceptor = newThread(() -> acceptLoop(again), "accept");
            acceptor.start();
        }
        log.info("{} {} new connections on port {}", name, refuse ? "refuses" : "accepts", port());
    }

    /**
     * Makes every new connection wait this long before the proxy connects it to the server, as a slow server (an
     * overloaded one, a slow authentication, a long network path) does; open connections are not slowed.
     *
     * @param delay the wait; zero (the default) for none
     */
    public void connectDelay(Duration delay) {
        if (delay.isNegative()) {
            throw new IllegalArgumentException("a negative delay: " + delay);
        }
        connectDelay = delay;
    }

    /**
     * Sends GoAway to every new connection once it is ready, as a leaving server that still accepts connections
     * (a stale balancer in front of a server that asks every client to leave) does; open connections are not
     * told again.
     *
     * @param on true to ask every new connection to leave, false (the default) for none
     */
    public void goAwayOnConnect(boolean on) {
        goAwayOnConnect = on;
    }

    // ---- facts ------------------------------------------------------------------------------------------------

    /** @return every connection so far, open and closed, oldest first */
    public List<ProxiedConnection> connections() {
        List<ProxiedConnection> all;
        // Under the lock that ended() moves a connection from open to closed with: each is listed once.
        synchronized (closedFacts) {
            all = new ArrayList<>(closedFacts);
            for (ProxySession s : sessions) {
                all.add(s.facts());
            }
        }
        all.sort((a, b) -> Long.compare(a.id(), b.id()));
        return all;
    }

    /** @return the connections open now */
    public List<ProxiedConnection> openConnections() {
        return sessions.stream().filter(ProxySession::isOpen).map(ProxySession::facts).toList();
    }

    /** @return what happened, in order: the newest {@value #MAX_EVENTS_KEPT} events */
    public List<ProxyEvent> timeline() {
        synchronized (timeline) {
            return List.copyOf(timeline);
        }
    }

    /** @return the server new connections go to */
    public InetSocketAddress currentUpstream() {
        return upstream.get();
    }

    /** @return true if new connections are refused now: the server they would go to is shutting down */
    public boolean shuttingDown() {
        return shuttingDown(upstream.get());
    }

    // ---- life ------------------------------------------------------------------------------------------------

    /** Closes the listener and every connection, and waits for the proxy's threads to end. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            listener.close();
        } catch (IOException e) {
            log.debug("{}: closing the listener: {}", name, e.toString());
        }
        for (ProxySession s : sessions) {
            s.close();
        }
        for (Thread t : threads) {
            try {
                t.join(5_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            if (t.isAlive()) {
                log.warn("{}: thread {} did not end within 5 s", name, t.getName());
            }
        }
        log.info("{} closed", name);
    }

    private void acceptLoop(ServerSocket listener) {
        while (!closed) {
            Socket client;
            try {
                client = listener.accept();
            } catch (IOException e) {
                if (!closed && listener == this.listener && !listener.isClosed()) {
                    log.warn("{}: accept failed, no longer listening: {}", name, e.toString());
                }
                return;
            }
            try {
                // The proxy writes a server's reply message by message; with Nagle's algorithm on, the client's
                // delayed ACK would hold each reply's tail for ~40 ms, a latency no real server adds.
                client.setTcpNoDelay(true);
            } catch (IOException e) {
                log.debug("{}: TCP_NODELAY not set on a client connection: {}", name, e.toString());
            }
            ProxySession session = new ProxySession(ids.incrementAndGet(), this, client, tls);
            sessions.add(session);
            if (closed) {
                session.close();
                return;
            }
            newThread(session::run, "session-" + session.id + "-client").start();
        }
    }

    // ---- called by sessions -----------------------------------------------------------------------------------

    InetSocketAddress upstream() {
        return upstream.get();
    }

    Duration connectDelay() {
        return connectDelay;
    }

    boolean goAwayOnConnect() {
        return goAwayOnConnect;
    }

    Thread newThread(Runnable body, String what) {
        Thread t = new Thread(() -> {
            try {
                body.run();
            } finally {
                threads.remove(Thread.currentThread());
            }
        }, name + "-" + what);
        t.setDaemon(true);
        threads.add(t);
        return t;
    }

    void event(ProxyEvent.Kind kind, long connectionId, String detail) {
        synchronized (timeline) {
            if (timeline.size() == MAX_EVENTS_KEPT) {
                timeline.removeFirst();
            }
            timeline.addLast(new ProxyEvent(Instant.now(), kind, connectionId, detail));
        }
        log.debug("{}: #{} {} {}", name, connectionId, kind, detail);
    }

    /** A client's CancelRequest: forward it, unchanged, to the server of the backend it names. */
    void forwardCancel(byte[] body) {
        for (ProxySession s : sessions) {
            if (s.isOpen() && s.matches(body)) {
                byte[] request = new byte[8 + body.length];
                Wire.writeInt(request, 0, request.length);
                Wire.writeInt(request, 4, Wire.CANCEL_REQUEST);
                System.arraycopy(body, 0, request, 8, body.length);
                try {
                    ProxySession.sendCancel(s.upstreamAddress(), request);
                } catch (IOException e) {
                    log.warn("{}: could not forward a cancel request for pid {}: {}", name, s.backendPid(),
                            e.toString());
                }
                return;
            }
        }
        // Like the server: a cancel for an unknown backend is ignored, silently.
    }

    void ended(ProxySession session) {
        synchronized (closedFacts) {
            if (closedFacts.size() >= MAX_CLOSED_KEPT) {
                closedFacts.remove(0);
            }
            closedFacts.add(session.facts());
            sessions.remove(session);
        }
        completeShutdowns();
    }

    boolean shuttingDown(InetSocketAddress server) {
        synchronized (shutdowns) {
            return shutdowns.containsKey(server);
        }
    }

    /** Completes the smart shutdowns whose server has no client connection left. */
    private void completeShutdowns() {
        List<SmartShutdown> drained = new ArrayList<>();
        synchronized (shutdowns) {
            for (SmartShutdown shutdown : shutdowns.values()) {
                if (!shutdown.drained && sessions.stream()
                        .noneMatch(s -> s.isOpen() && shutdown.server.equals(s.target()))) {
                    shutdown.drained = true;
                    drained.add(shutdown);
                }
            }
        }
        for (SmartShutdown shutdown : drained) {
            ShutdownCompletion completion = new ShutdownCompletion(shutdown.requestedAt, Instant.now(),
                    shutdown.connections);
            // The timeline has the event by the time anyone waiting on the future wakes up.
            event(ProxyEvent.Kind.SHUTDOWN_COMPLETE, 0, shutdown.server.getHostString() + ":"
                    + shutdown.server.getPort() + " drained in " + completion.drainTime().toMillis() + " ms");
            shutdown.done.complete(completion);
        }
    }

    /** One server's smart shutdown. */
    private static final class SmartShutdown {
        final InetSocketAddress server;
        final Instant requestedAt;
        final int connections;
        final CompletableFuture<ShutdownCompletion> done = new CompletableFuture<>();
        /** Set once, under the map's lock, by whoever completes {@link #done}. */
        boolean drained;

        SmartShutdown(InetSocketAddress server, Instant requestedAt, int connections) {
            this.server = server;
            this.requestedAt = requestedAt;
            this.connections = connections;
        }
    }
}
