package dev.poolgoaway.wire;

import java.lang.reflect.Field;
import java.net.Socket;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;

import org.postgresql.PGConnection;
import org.postgresql.PGProperty;
import org.postgresql.core.BaseConnection;
import org.postgresql.core.PGStream;
import org.postgresql.core.QueryExecutor;
import org.postgresql.core.QueryExecutorBase;
import org.postgresql.util.DriverInfo;

/**
 * The wire layer's entry points: install it into pgjdbc's connection properties, and read a connection's
 * {@link ConnectionSignals} (the Java counterpart of libpq's {@code PQgoAwayReceived()}).
 *
 * <pre>{@code
 * Properties props = PgGoAway.install(new Properties());
 * props.setProperty("user", "app");
 * try (Connection c = DriverManager.getConnection(url, props)) {
 *     ...
 *     if (PgGoAway.goAwayReceived(c)) {
 *         // the server asked us to leave: close this connection when convenient
 *     }
 * }
 * }</pre>
 */
public final class PgGoAway {

    /**
     * Connection property naming the {@link javax.net.SocketFactory} the wire layer wraps; {@link #install} moves
     * a user's {@code socketFactory} here. Unset means the JDK's default.
     */
    public static final String DELEGATE_SOCKET_FACTORY = "poolgoaway.socketFactory";

    /**
     * Connection property naming the {@link javax.net.ssl.SSLSocketFactory} the wire layer wraps; {@link #install}
     * moves a user's {@code sslfactory} here. Unset means pgjdbc's default {@code LibPQFactory}.
     */
    public static final String DELEGATE_SSL_FACTORY = "poolgoaway.sslfactory";

    /**
     * Connection property naming a group: the signals of every open connection made with it can be listed with
     * {@link #group(String)}, without reaching the connections themselves (a pool's public-API fallback uses it).
     */
    public static final String GROUP = "poolgoaway.group";

    /**
     * Connection property: how the layer asks the server for GoAway. {@code both} (the default) asks for protocol
     * 3.3 and for the {@code _pq_.goaway} protocol extension in the same StartupMessage; {@code protocol} for 3.3
     * only (the GoAway patch of 2025), {@code extension} for the extension only (its 2026 revisions), {@code off}
     * for neither (pgjdbc's StartupMessage then goes out unchanged).
     */
    public static final String GOAWAY_REQUEST = "poolgoaway.goAwayRequest";

    /**
     * Connection property: the startup parameter that requests the GoAway protocol extension, {@code _pq_.goaway}
     * by default. It tracks an unmerged draft: set it for a server built from a revision that names it otherwise.
     */
    public static final String GOAWAY_EXTENSION = "poolgoaway.goAwayExtension";

    /**
     * Connection property: the value sent with {@link #GOAWAY_EXTENSION}, {@code true} by default (the draft's
     * expected value is not in its public material).
     */
    public static final String GOAWAY_EXTENSION_VALUE = "poolgoaway.goAwayExtensionValue";

    /** Open connections by {@link #GROUP}; a connection leaves its group when its socket closes. */
    private static final Map<String, Set<ConnectionSignals>> GROUPS = new ConcurrentHashMap<>();
    /** Who hears of a group's refused startups (see {@link #onStartupRefused}). */
    private static final Map<String, Consumer<ConnectionSignals>> REFUSALS = new ConcurrentHashMap<>();
    /** What to run at a group's first connection ({@link #onFirstConnection}). */
    private static final Map<String, Runnable> FIRST_CONNECTION = new ConcurrentHashMap<>();

    private static final String SOCKET_FACTORY = PGProperty.SOCKET_FACTORY.getName();
    private static final String SSL_FACTORY = PGProperty.SSL_FACTORY.getName();

    private PgGoAway() {
    }

    /**
     * Installs the wire layer into pgjdbc connection properties (a pool's data source properties, or the
     * {@code info} given to {@code DriverManager}). Idempotent.
     *
     * <p>{@code socketFactory} and {@code sslfactory} become the wire layer's; factories the user had set are kept
     * and wrapped ({@value #DELEGATE_SOCKET_FACTORY}, {@value #DELEGATE_SSL_FACTORY}). Nothing else changes:
     * pgjdbc asks for the protocol version it would ask for without pool-goaway ({@code protocolVersion}, 3.0 by
     * default), and the layer raises that request to 3.3 on the wire, where GoAway needs it, translating the answer
     * back so that pgjdbc gets the session its own request would have had. A peer that fails on the raised request
     * costs no connection: the layer replays pgjdbc's own (see {@code docs/wire-layer.md}).
     *
     * <p>With {@code DriverManager}, parameters in the URL win over these properties: use
     * {@link #install(String, Properties)} when the URL may name a socket factory.
     *
     * <p>How GoAway is asked for can be chosen with {@value #GOAWAY_REQUEST}, {@value #GOAWAY_EXTENSION} and
     * {@value #GOAWAY_EXTENSION_VALUE}.
     *
     * @param props the connection properties, changed in place
     * @return {@code props}
     * @throws IllegalArgumentException if {@value #GOAWAY_REQUEST} or {@value #GOAWAY_EXTENSION} has a value the
     *                                  layer cannot use
     */
    public static Properties install(Properties props) {
        GoAwayRequest.from(props);
        moveToDelegate(props, SOCKET_FACTORY, GoAwaySocketFactory.class, DELEGATE_SOCKET_FACTORY);
        moveToDelegate(props, SSL_FACTORY, GoAwaySslSocketFactory.class, DELEGATE_SSL_FACTORY);
        return props;
    }

    /**
     * Installs the wire layer for a connection URL: pgjdbc lets a URL's parameters win over the connection
     * properties, so a {@code socketFactory} or {@code sslfactory} in the URL would silently replace the wire
     * layer. They move into {@code props} (where {@link #install(Properties)} keeps and wraps them), and the URL to
     * connect with is returned without them.
     *
     * <pre>{@code
     * Properties props = new Properties();
     * String url = PgGoAway.install("jdbc:postgresql://db/app?sslfactory=com.example.Tls", props);
     * Connection c = DriverManager.getConnection(url, props);
     * }</pre>
     *
     * @param url   a {@code jdbc:postgresql:} URL
     * @param props the connection properties, changed in place
     * @return the URL to connect with
     * @throws IllegalArgumentException if {@code url} is not a pgjdbc URL
     */
    public static String install(String url, Properties props) {
        if (url == null || !url.startsWith("jdbc:postgresql:")) {
            throw new IllegalArgumentException("not a pgjdbc URL (jdbc:postgresql:...): " + url);
        }
        String rest = url;
        int q = url.indexOf('?');
        if (q >= 0) {
            List<String> kept = new ArrayList<>();
            for (String pair : url.substring(q + 1).split("&")) {
                int eq = pair.indexOf('=');
                String key = eq < 0 ? pair : pair.substring(0, eq);
                if (key.equals(SOCKET_FACTORY) || key.equals(SSL_FACTORY)) {
                    String value = eq < 0 ? "" : URLDecoder.decode(pair.substring(eq + 1), StandardCharsets.UTF_8);
                    props.setProperty(key, value);
                } else if (!pair.isEmpty()) {
                    kept.add(pair);
                }
            }
            rest = kept.isEmpty() ? url.substring(0, q) : url.substring(0, q + 1) + String.join("&", kept);
        }
        install(props);
        return rest;
    }

    private static void moveToDelegate(Properties props, String key, Class<?> ours, String delegateKey) {
        String current = props.getProperty(key);
        if (current != null && !current.isBlank() && !current.trim().equals(ours.getName())) {
            props.setProperty(delegateKey, current.trim());
        }
        props.setProperty(key, ours.getName());
    }

    /**
     * Finds the signals of a connection made through the wire layer.
     *
     * <p>Correlation is exact: the signals belong to the very socket under this connection (found through
     * pgjdbc's object graph), and live exactly as long as it.
     *
     * @param connection a pgjdbc connection, or anything that unwraps to one (a pool's proxy)
     * @return its signals; empty if the connection was not made through the wire layer
     * @throws SQLException if it is not a pgjdbc connection, or this pgjdbc version's internals are not the ones
     *                      the layer knows
     */
    public static Optional<ConnectionSignals> signals(Connection connection) throws SQLException {
        PGConnection pg = connection.unwrap(PGConnection.class);
        if (!(pg instanceof BaseConnection base)) {
            throw new SQLException("pool-goaway: " + pg.getClass().getName() + " is not a pgjdbc BaseConnection");
        }
        Socket socket = StreamAccess.socketOf(base.getQueryExecutor());
        return socket instanceof SignalSource source ? Optional.of(source.signals()) : Optional.empty();
    }

    /**
     * The equivalent of libpq's {@code PQgoAwayReceived()}: true once the server sent GoAway on this connection.
     * Like libpq it does not read from the server; see {@link ConnectionSignals#poll()} for idle connections.
     *
     * @param connection a pgjdbc connection, or anything that unwraps to one
     * @return true if a GoAway arrived; false also for connections not made through the wire layer
     * @throws SQLException as {@link #signals(Connection)}
     */
    public static boolean goAwayReceived(Connection connection) throws SQLException {
        return signals(connection).map(ConnectionSignals::goAwayReceived).orElse(false);
    }

    /**
     * @param group a {@link #GROUP} value
     * @return the signals of the group's connections whose sockets are open now
     */
    public static List<ConnectionSignals> group(String group) {
        Set<ConnectionSignals> members = GROUPS.get(group);
        return members == null ? List.of() : List.copyOf(members);
    }

    /**
     * Has {@code listener} told, on the connecting thread, of every new connection of the group that the server
     * ended during its startup (a FATAL error before the session was ready: {@link ConnectionSignals#termination()}
     * says which), with the address that refused it ({@link ConnectionSignals#peerAddress()}). A server in smart
     * shutdown refuses new connections with 57P03 while its open ones go on: a pool hears of it this way. One
     * listener per group; it must be quick.
     *
     * @param group    a {@link #GROUP} value
     * @param listener the listener
     * @return closing it removes the listener
     */
    public static AutoCloseable onStartupRefused(String group, Consumer<ConnectionSignals> listener) {
        REFUSALS.put(group, listener);
        return () -> REFUSALS.remove(group, listener);
    }

    static void startupRefused(String group, ConnectionSignals signals) {
        Consumer<ConnectionSignals> l = REFUSALS.get(group);
        if (l != null) {
            try {
                l.accept(signals);
            } catch (RuntimeException e) {
                // Never in pgjdbc's way: the refusal reaches pgjdbc as it would have anyway.
            }
        }
    }

    /**
     * Runs {@code action} once, on the connecting thread, when the group's first connection is made (its first
     * ReadyForQuery): how a pool integration learns that a pool it was installed into connects, whatever started
     * it. It must be quick.
     *
     * @param group  a {@link #GROUP} value
     * @param action what to run
     */
    public static void onFirstConnection(String group, Runnable action) {
        FIRST_CONNECTION.put(group, action);
    }

    /**
     * @return how many servers this process remembers as failing on the raised startup request (protocol 3.3 or
     *         the GoAway extension): connections to them use pgjdbc's own request and cannot receive GoAway. The
     *         memory is bounded (oldest evicted) and forgets each server an hour after it learned it.
     */
    public static int serversRefusingGoAway() {
        return ProtocolUpgrade.SHARED.rememberedPeers();
    }

    /**
     * @param server {@code host:port}, as {@link ConnectionSignals#server()} names it
     * @return true if the last connection of this process to {@code server} that completed its startup can
     *         receive GoAway, and the server is not remembered as refusing: a new connection there would too
     */
    public static boolean grantsGoAway(String server) {
        return ProtocolUpgrade.SHARED.grantsGoAway(server);
    }

    static void joinGroup(String group, ConnectionSignals signals) {
        GROUPS.computeIfAbsent(group, g -> ConcurrentHashMap.newKeySet()).add(signals);
        Runnable first = FIRST_CONNECTION.remove(group);
        if (first != null) {
            first.run();
        }
    }

    static void leaveGroup(String group, ConnectionSignals signals) {
        GROUPS.computeIfPresent(group, (g, members) -> {
            members.remove(signals);
            return members.isEmpty() ? null : members;
        });
    }

    /** Reaches the socket under a pgjdbc query executor; resolved once, with a clear error if it cannot be. */
    private static final class StreamAccess {
        private static final Field PG_STREAM;
        private static final String PROBLEM;

        static {
            Field f = null;
            String problem = null;
            try {
                f = QueryExecutorBase.class.getDeclaredField("pgStream");
                f.setAccessible(true);
            } catch (ReflectiveOperationException | RuntimeException e) {
                problem = e.toString();
            }
            PG_STREAM = f;
            PROBLEM = problem;
        }

        static Socket socketOf(QueryExecutor executor) throws SQLException {
            if (PG_STREAM == null || !(executor instanceof QueryExecutorBase)) {
                throw new SQLException("pool-goaway cannot reach the socket of a pgjdbc "
                        + DriverInfo.DRIVER_VERSION + " connection (" + (PROBLEM != null ? PROBLEM
                        : executor.getClass().getName()) + "); supported: pgjdbc 42.7.x");
            }
            try {
                return ((PGStream) PG_STREAM.get(executor)).getSocket();
            } catch (IllegalAccessException e) {
                throw new SQLException("pool-goaway cannot reach the socket of a pgjdbc connection", e);
            }
        }
    }
}
