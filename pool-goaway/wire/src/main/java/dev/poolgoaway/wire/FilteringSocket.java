package dev.poolgoaway.wire;

import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketAddress;
import java.net.SocketException;
import java.net.SocketOption;
import java.time.Clock;
import java.util.LinkedHashMap;
import java.util.Map;

import javax.net.SocketFactory;

/**
 * The plain TCP socket pgjdbc gets from {@link GoAwaySocketFactory}: a socket from the delegate factory whose
 * streams run the wire layer's filters. Everything else is delegated unchanged.
 *
 * <p>When the connection turns to TLS (the server answered 'S'), this layer passes the encrypted bytes through and
 * {@link FilteringSslSocket} on top of it does the filtering, recording into the same {@link ConnectionSignals}.
 */
final class FilteringSocket extends DelegatingSocket implements SignalSource {

    private final SocketFactory factory;
    private volatile Socket inner;
    private int connectTimeout;
    /**
     * The very address pgjdbc connected to, for a reconnect to connect to again: unresolved where pgjdbc left it
     * unresolved (a SOCKS proxy resolves it), which the connected socket's remote address would not tell. Null if
     * pgjdbc never called connect (the delegate's sockets come connected, as connector-style factories' do).
     */
    private volatile SocketAddress endpoint;
    /** The local address pgjdbc bound to ({@code localSocketAddress}), for a reconnect to bind to as well. */
    private SocketAddress boundTo;
    /**
     * The options pgjdbc set, in order, the last value of each: a reconnect sets these and no others, so that what
     * pgjdbc left alone (buffer sizes: Linux autotunes them unless set) stays the system's.
     */
    private final Map<String, SocketSetting> settings = new LinkedHashMap<>();
    private final ProtocolUpgrade upgrade;
    private final ConnectionSignals signals;
    private final String group;
    private final GoAwayRequest request;
    private FilteredStreams streams;

    FilteringSocket(SocketFactory factory, ProtocolUpgrade upgrade, Clock clock, String group, GoAwayRequest request)
            throws IOException {
        this.request = request;
        this.factory = factory;
        this.inner = factory.createSocket();
        this.upgrade = upgrade;
        this.signals = new ConnectionSignals(clock);
        this.group = group;
        if (group != null) {
            // Only sessions join: not cancel requests, not startups that fail, which would look like connections.
            signals.onReady(() -> PgGoAway.joinGroup(group, signals));
            signals.onRefused(() -> PgGoAway.startupRefused(group, signals));
        }
    }

    @Override
    public ConnectionSignals signals() {
        return signals;
    }

    /** One socket option as pgjdbc set it, to be set again on a reconnect. */
    @FunctionalInterface
    private interface SocketSetting {
        void apply(Socket s) throws IOException;
    }

    private void record(String option, SocketSetting setting) throws SocketException {
        try {
            setting.apply(inner);
        } catch (SocketException e) {
            throw e;
        } catch (IOException e) {
            throw new SocketException(e.getMessage());
        }
        synchronized (settings) {
            settings.remove(option);
            settings.put(option, setting);
        }
    }

    /** @return the server as {@code host:port}, as pgjdbc named it (the address it connected to, if it did) */
    String peer() {
        SocketAddress a = endpoint != null ? endpoint : inner.getRemoteSocketAddress();
        return a instanceof InetSocketAddress isa ? isa.getHostString() + ":" + isa.getPort() : String.valueOf(a);
    }

    private synchronized FilteredStreams streams() throws IOException {
        if (streams == null) {
            streams = FilteredStreams.open(inner, peer(), true, null, this::reconnectAndReplay, signals, upgrade,
                    request);
        }
        return streams;
    }

    /** @return true if the client opened with a TLS handshake rather than an SSLRequest */
    boolean directTls() throws IOException {
        return streams().out().directTls();
    }

    /**
     * Replaces the connection with a new one made the way pgjdbc made this one: a new socket from the same
     * factory, the options pgjdbc set (and no others), bound where pgjdbc bound, connected only if the factory's
     * socket is not connected already, to the very address pgjdbc passed, within pgjdbc's connectTimeout. The
     * filters start over as on a new socket. For a peer that failed on the raised protocol version.
     *
     * @param layeredOver what runs over this socket and must be closed first (the TLS socket), or null
     * @throws IOException if the new connection cannot be made
     */
    void reopen(Closeable layeredOver) throws IOException {
        FilteredStreams filtered = streams();
        Socket old = inner;
        if (layeredOver != null) {
            layeredOver.close();
        }
        old.close();
        signals.socketClosed();
        Socket fresh = factory.createSocket();
        try {
            SocketSetting[] replay;
            synchronized (settings) {
                replay = settings.values().toArray(SocketSetting[]::new);
            }
            for (SocketSetting setting : replay) {
                setting.apply(fresh);
            }
            if (boundTo != null && !fresh.isBound()) {
                fresh.bind(boundTo);
            }
            if (!fresh.isConnected()) {
                if (endpoint == null) {
                    throw new SocketException("pool-goaway cannot reconnect to " + peer() + ": the socket factory's "
                            + "first socket came connected and its second did not");
                }
                fresh.connect(endpoint, connectTimeout);
            }
        } catch (IOException e) {
            fresh.close();
            throw e;
        }
        inner = fresh;
        filtered.in().reset(fresh.getInputStream());
        filtered.out().reset(fresh.getOutputStream());
    }

    /** @return pgjdbc's connectTimeout in milliseconds, 0 for none */
    int connectTimeout() {
        return connectTimeout;
    }

    private InputStream reconnectAndReplay(ProtocolUpgrade.Attempt failed) throws IOException {
        reopen(null);
        streams().out().replayStartup(inner.getOutputStream(), failed);
        return inner.getInputStream();
    }

    @Override
    public InputStream getInputStream() throws IOException {
        return streams().in();
    }

    @Override
    public OutputStream getOutputStream() throws IOException {
        return streams().out();
    }

    @Override
    protected Socket delegate() {
        return inner;
    }

    // ---- what the delegation base does not just hand on ----------------------------------------

    @Override
    public void connect(SocketAddress endpoint) throws IOException {
        connect(endpoint, 0);
    }

    @Override
    public void connect(SocketAddress endpoint, int timeout) throws IOException {
        connectTimeout = timeout;
        this.endpoint = endpoint;
        inner.connect(endpoint, timeout);
    }

    @Override
    public void bind(SocketAddress bindpoint) throws IOException {
        inner.bind(bindpoint);
        boundTo = bindpoint;
    }

    @Override
    public void setTcpNoDelay(boolean on) throws SocketException {
        record("TCP_NODELAY", s -> s.setTcpNoDelay(on));
    }

    @Override
    public void setKeepAlive(boolean on) throws SocketException {
        record("SO_KEEPALIVE", s -> s.setKeepAlive(on));
    }

    @Override
    public void setSoTimeout(int timeout) throws SocketException {
        record("SO_TIMEOUT", s -> s.setSoTimeout(timeout));
    }

    @Override
    public void setReceiveBufferSize(int size) throws SocketException {
        record("SO_RCVBUF", s -> s.setReceiveBufferSize(size));
    }

    @Override
    public void setSendBufferSize(int size) throws SocketException {
        record("SO_SNDBUF", s -> s.setSendBufferSize(size));
    }

    @Override
    public void setSoLinger(boolean on, int linger) throws SocketException {
        record("SO_LINGER", s -> s.setSoLinger(on, linger));
    }

    @Override
    public void setTrafficClass(int tc) throws SocketException {
        record("IP_TOS", s -> s.setTrafficClass(tc));
    }

    @Override
    public void setReuseAddress(boolean on) throws SocketException {
        record("SO_REUSEADDR", s -> s.setReuseAddress(on));
    }

    @Override
    public void setOOBInline(boolean on) throws SocketException {
        record("SO_OOBINLINE", s -> s.setOOBInline(on));
    }

    @Override
    public <T> Socket setOption(SocketOption<T> name, T value) throws IOException {
        record(name.name(), s -> s.setOption(name, value));
        return this;
    }

    @Override
    public void close() throws IOException {
        if (group != null) {
            PgGoAway.leaveGroup(group, signals);
        }
        signals.socketClosed();
        inner.close();
    }

    @Override
    public String toString() {
        return "pool-goaway " + inner;
    }
}
