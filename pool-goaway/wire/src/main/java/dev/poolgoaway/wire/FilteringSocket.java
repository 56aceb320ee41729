package dev.poolgoaway.wire;

import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketAddress;
import java.net.SocketException;
import java.net.SocketOption;
import java.nio.channels.SocketChannel;
import java.time.Clock;
import java.util.Set;

import javax.net.SocketFactory;

/**
 * The plain TCP socket pgjdbc gets from {@link GoAwaySocketFactory}: a socket from the delegate factory whose
 * streams run the wire layer's filters. Everything else is delegated unchanged.
 *
 * <p>When the connection turns to TLS (the server answered 'S'), this layer passes the encrypted bytes through and
 * {@link FilteringSslSocket} on top of it does the filtering, recording into the same {@link ConnectionSignals}.
 */
final class FilteringSocket extends Socket implements SignalSource {

    private final SocketFactory factory;
    private volatile Socket inner;
    private int connectTimeout;
    /** The local address pgjdbc bound to ({@code localSocketAddress}), for a reconnect to bind to as well. */
    private InetAddress boundTo;
    private final ProtocolUpgrade upgrade;
    private final ConnectionSignals signals;
    private final String group;
    private final GoAwayRequest request;
    private BackendInputStream in;
    private FrontendOutputStream out;

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

    private synchronized void openStreams() throws IOException {
        if (in == null) {
            String peer = peer();
            BackendFilter filter = new BackendFilter(signals, peer, true);
            in = new BackendInputStream(inner.getInputStream(), filter, null, this::reconnectAndReplay);
            out = new FrontendOutputStream(inner.getOutputStream(), filter, upgrade, peer, request);
            signals.poller(in);
            signals.server(peer);
        }
    }

    /** @return true if the client opened with a TLS handshake rather than an SSLRequest */
    boolean directTls() throws IOException {
        openStreams();
        return out.directTls();
    }

    /**
     * Replaces the connection with a new one to the same server, with the same options: the filters start over
     * as on a new socket. For a peer that failed on the raised protocol version.
     *
     * @param layeredOver what runs over this socket and must be closed first (the TLS socket), or null
     * @throws IOException if the new connection cannot be made
     */
    void reopen(Closeable layeredOver) throws IOException {
        openStreams();
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
        in.reset(fresh.getInputStream());
        out.reset(fresh.getOutputStream());
    }

    /** @return pgjdbc's connectTimeout in milliseconds, 0 for none */
    int connectTimeout() {
        return connectTimeout;
    }

    private InputStream reconnectAndReplay(ProtocolUpgrade.Attempt failed) throws IOException {
        reopen(null);
        out.replayStartup(inner.getOutputStream(), failed);
        return inner.getInputStream();
    }

    @Override
    public InputStream getInputStream() throws IOException {
        openStreams();
        return in;
    }

    @Override
    public OutputStream getOutputStream() throws IOException {
        openStreams();
        return out;
    }

    // ---- plain delegation ---------------------------------------------------------------------------------

    @Override
    public void connect(SocketAddress endpoint) throws IOException {
        inner.connect(endpoint);
    }

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
    public InetAddress getInetAddress() {
        return inner.getInetAddress();
    }

    @Override
    public InetAddress getLocalAddress() {
        return inner.getLocalAddress();
    }

    @Override
    public int getPort() {
        return inner.getPort();
    }

    @Override
    public int getLocalPort() {
        return inner.getLocalPort();
    }

    @Override
    public SocketAddress getRemoteSocketAddress() {
        return inner.getRemoteSocketAddress();
    }

    @Override
    public SocketAddress getLocalSocketAddress() {
        return inner.getLocalSocketAddress();
    }

    @Override
    public SocketChannel getChannel() {
        // A channel would bypass the filters.
        return null;
    }

    @Override
    public void setTcpNoDelay(boolean on) throws SocketException {
        inner.setTcpNoDelay(on);
    }

    @Override
    public boolean getTcpNoDelay() throws SocketException {
        return inner.getTcpNoDelay();
    }

    @Override
    public void setSoLinger(boolean on, int linger) throws SocketException {
        inner.setSoLinger(on, linger);
    }

    @Override
    public int getSoLinger() throws SocketException {
        return inner.getSoLinger();
    }

    @Override
    public void sendUrgentData(int data) throws IOException {
        inner.sendUrgentData(data);
    }

    @Override
    public void setOOBInline(boolean on) throws SocketException {
        inner.setOOBInline(on);
    }

    @Override
    public boolean getOOBInline() throws SocketException {
        return inner.getOOBInline();
    }

    @Override
    public void setSoTimeout(int timeout) throws SocketException {
        inner.setSoTimeout(timeout);
    }

    @Override
    public int getSoTimeout() throws SocketException {
        return inner.getSoTimeout();
    }

    @Override
    public void setSendBufferSize(int size) throws SocketException {
        inner.setSendBufferSize(size);
    }

    @Override
    public int getSendBufferSize() throws SocketException {
        return inner.getSendBufferSize();
    }

    @Override
    public void setReceiveBufferSize(int size) throws SocketException {
        inner.setReceiveBufferSize(size);
    }

    @Override
    public int getReceiveBufferSize() throws SocketException {
        return inner.getReceiveBufferSize();
    }

    @Override
    public void setKeepAlive(boolean on) throws SocketException {
        inner.setKeepAlive(on);
    }

    @Override
    public boolean getKeepAlive() throws SocketException {
        return inner.getKeepAlive();
    }

    @Override
    public void setTrafficClass(int tc) throws SocketException {
        inner.setTrafficClass(tc);
    }

    @Override
    public int getTrafficClass() throws SocketException {
        return inner.getTrafficClass();
    }

    @Override
    public void setReuseAddress(boolean on) throws SocketException {
        inner.setReuseAddress(on);
    }

    @Override
    public boolean getReuseAddress() throws SocketException {
        return inner.getReuseAddress();
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
    public void shutdownInput() throws IOException {
        inner.shutdownInput();
    }

    @Override
    public void shutdownOutput() throws IOException {
        inner.shutdownOutput();
    }

    @Override
    public boolean isConnected() {
        return inner.isConnected();
    }

    @Override
    public boolean isBound() {
        return inner.isBound();
    }

    @Override
    public boolean isClosed() {
        return inner.isClosed();
    }

    @Override
    public boolean isInputShutdown() {
        return inner.isInputShutdown();
    }

    @Override
    public boolean isOutputShutdown() {
        return inner.isOutputShutdown();
    }

    @Override
    public void setPerformancePreferences(int connectionTime, int latency, int bandwidth) {
        inner.setPerformancePreferences(connectionTime, latency, bandwidth);
    }

    @Override
    public <T> Socket setOption(SocketOption<T> name, T value) throws IOException {
        inner.setOption(name, value);
        return this;
    }

    @Override
    public <T> T getOption(SocketOption<T> name) throws IOException {
        return inner.getOption(name);
    }

    @Override
    public Set<SocketOption<?>> supportedOptions() {
        return inner.supportedOptions();
    }

    @Override
    public String toString() {
        return "pool-goaway " + inner;
    }
}
