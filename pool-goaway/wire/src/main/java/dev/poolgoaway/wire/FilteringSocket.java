package dev.poolgoaway.wire;

import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketAddress;
import java.time.Clock;

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
    /** The local address pgjdbc bound to ({@code localSocketAddress}), for a reconnect to bind to as well. */
    private InetAddress boundTo;
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

    /** @return the server as {@code host:port}, as pgjdbc named it */
    String peer() {
        SocketAddress a = inner.getRemoteSocketAddress();
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
     * Replaces the connection with a new one to the same server, with the same options: the filters start over
     * as on a new socket. For a peer that failed on the raised protocol version.
     *
     * @param layeredOver what runs over this socket and must be closed first (the TLS socket), or null
     * @throws IOException if the new connection cannot be made
     */
    void reopen(Closeable layeredOver) throws IOException {
        FilteredStreams filtered = streams();
        Socket old = inner;
        boolean noDelay = old.getTcpNoDelay();
        boolean keepAlive = old.getKeepAlive();
        int soTimeout = old.getSoTimeout();
        int receiveBuffer = old.getReceiveBufferSize();
        int sendBuffer = old.getSendBufferSize();
        SocketAddress remote = old.getRemoteSocketAddress();
        if (layeredOver != null) {
            layeredOver.close();
        }
        old.close();
        signals.socketClosed();
        Socket fresh = factory.createSocket();
        try {
            fresh.setTcpNoDelay(noDelay);
            fresh.setKeepAlive(keepAlive);
            fresh.setSoTimeout(soTimeout);
            fresh.setReceiveBufferSize(receiveBuffer);
            fresh.setSendBufferSize(sendBuffer);
            if (boundTo != null) {
                fresh.bind(new InetSocketAddress(boundTo, 0));
            }
            // pgjdbc's connectTimeout bounds the new connection as it bounded the first.
            fresh.connect(remote, connectTimeout);
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
    public void connect(SocketAddress endpoint, int timeout) throws IOException {
        connectTimeout = timeout;
        inner.connect(endpoint, timeout);
    }

    @Override
    public void bind(SocketAddress bindpoint) throws IOException {
        inner.bind(bindpoint);
        boundTo = bindpoint instanceof InetSocketAddress local ? local.getAddress() : null;
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
