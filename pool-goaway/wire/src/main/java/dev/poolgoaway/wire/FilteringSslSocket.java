package dev.poolgoaway.wire;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketAddress;
import java.net.SocketException;
import java.net.SocketOption;
import java.net.SocketTimeoutException;
import java.nio.channels.SocketChannel;
import java.security.cert.Certificate;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.function.BiFunction;

import javax.net.ssl.HandshakeCompletedListener;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;

/**
 * The TLS socket pgjdbc gets from {@link GoAwaySslSocketFactory}: the delegate factory's {@link SSLSocket} with
 * the wire layer's filters on its plaintext streams. Handshake, session (SCRAM channel binding reads the server
 * certificate from it) and hostname verification are the delegate's, untouched.
 */
final class FilteringSslSocket extends SSLSocket implements SignalSource, BackendInputStream.EncryptedTransport {

    /** How long an idle poll may wait for the rest of a TLS record that has begun to arrive. */
    static final int POLL_READ_MILLIS = 5;

    /** SSLRequest: length 8, code 80877103. */
    private static final byte[] SSL_REQUEST = {0, 0, 0, 8, 0x04, (byte) 0xd2, 0x16, 0x2f};

    /** Runs after a successful handshake: reports what the delegate factory deferred (client key problems). */
    interface HandshakeCheck {
        void afterHandshake() throws IOException;
    }

    private volatile SSLSocket inner;
    private final Socket transport;
    private final SSLSocketFactory factory;
    private final String host;
    private final int port;
    private final ConnectionSignals signals;
    private final ProtocolUpgrade upgrade;
    private final GoAwayRequest request;
    private final HandshakeCheck handshakeCheck;
    /**
     * pgjdbc's socket timeout, kept here because an idle poll shortens the real one for a moment: a timeout pgjdbc
     * sets meanwhile must not be lost or overwritten by the poll's restore.
     */
    private final Object timeoutLock = new Object();
    private int soTimeout;
    private boolean polling;
    private BackendInputStream in;
    private FrontendOutputStream out;

    FilteringSslSocket(SSLSocketFactory factory, Socket transport, String host, int port, boolean autoClose,
            ConnectionSignals signals, ProtocolUpgrade upgrade, GoAwayRequest request, HandshakeCheck handshakeCheck)
            throws IOException {
        this.request = request;
        this.inner = (SSLSocket) factory.createSocket(transport, host, port, autoClose);
        this.factory = factory;
        this.transport = transport;
        this.host = host;
        this.port = port;
        this.signals = signals;
        this.upgrade = upgrade;
        this.handshakeCheck = handshakeCheck;
        this.soTimeout = inner.getSoTimeout();
    }

    @Override
    public ConnectionSignals signals() {
        return signals;
    }

    private synchronized void openStreams() throws IOException {
        if (in == null) {
            String peer = host + ":" + port;
            BackendFilter filter = new BackendFilter(signals, peer, transport instanceof FilteringSocket);
            in = new BackendInputStream(inner.getInputStream(), filter, this, this::reconnectAndReplay);
            out = new FrontendOutputStream(inner.getOutputStream(), filter, upgrade, peer, request);
            signals.poller(in);
            signals.server(peer);
        }
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

    /**
     * For a peer that failed on the raised protocol version: a new TCP connection, TLS again (the server must show
     * the certificate pgjdbc already verified), then pgjdbc's StartupMessage as pgjdbc wrote it. The TLS answer and
     * handshake wait no longer than pgjdbc's socket timeout, or else its connect timeout: a peer that stalls now
     * fails the connection as it would have failed pgjdbc's own.
     */
    private InputStream reconnectAndReplay(ProtocolUpgrade.Attempt failed) throws IOException {
        FilteringSocket plain = (FilteringSocket) transport;
        SSLSocket old = inner;
        SSLParameters parameters = old.getSSLParameters();
        Certificate[] verified = old.getSession().getPeerCertificates();
        boolean direct = plain.directTls();
        int timeout = getSoTimeout();
        plain.reopen(old);
        plain.setSoTimeout(timeout > 0 ? timeout : plain.connectTimeout());
        if (!direct) {
            OutputStream request = plain.getOutputStream();
            request.write(SSL_REQUEST);
            request.flush();
            int answer = plain.getInputStream().read();
            if (answer != 'S') {
                throw new SSLException(host + ":" + port + " no longer offers TLS (answered SSLRequest with "
                        + answer + ") on reconnect");
            }
        }
        SSLSocket fresh = (SSLSocket) factory.createSocket(plain, host, port, true);
        try {
            fresh.setSSLParameters(parameters);
            fresh.setUseClientMode(true);
            fresh.startHandshake();
            handshakeCheck.afterHandshake();
            if (!Arrays.equals(verified, fresh.getSession().getPeerCertificates())) {
                throw new SSLPeerUnverifiedException(host + ":" + port
                        + " presented a different certificate on reconnect");
            }
        } catch (IOException e) {
            fresh.close();
            throw e;
        }
        fresh.setSoTimeout(timeout);
        inner = fresh;
        out.replayStartup(fresh.getOutputStream(), failed);
        return fresh.getInputStream();
    }

    @Override
    public int encryptedAvailable() throws IOException {
        return transport.getInputStream().available();
    }

    @Override
    public int readWithin(InputStream plaintext, byte[] b, int off, int len) throws IOException {
        synchronized (timeoutLock) {
            polling = true;
            inner.setSoTimeout(POLL_READ_MILLIS);
        }
        try {
            return plaintext.read(b, off, len);
        } catch (SocketTimeoutException e) {
            return 0;
        } finally {
            synchronized (timeoutLock) {
                polling = false;
                inner.setSoTimeout(soTimeout);
            }
        }
    }

    @Override
    public void startHandshake() throws IOException {
        inner.startHandshake();
        handshakeCheck.afterHandshake();
    }

    // ---- TLS delegation -----------------------------------------------------------------------------------

    @Override
    public String[] getSupportedCipherSuites() {
        return inner.getSupportedCipherSuites();
    }

    @Override
    public String[] getEnabledCipherSuites() {
        return inner.getEnabledCipherSuites();
    }

    @Override
    public void setEnabledCipherSuites(String[] suites) {
        inner.setEnabledCipherSuites(suites);
    }

    @Override
    public String[] getSupportedProtocols() {
        return inner.getSupportedProtocols();
    }

    @Override
    public String[] getEnabledProtocols() {
        return inner.getEnabledProtocols();
    }

    @Override
    public void setEnabledProtocols(String[] protocols) {
        inner.setEnabledProtocols(protocols);
    }

    @Override
    public SSLSession getSession() {
        return inner.getSession();
    }

    @Override
    public SSLSession getHandshakeSession() {
        return inner.getHandshakeSession();
    }

    @Override
    public void addHandshakeCompletedListener(HandshakeCompletedListener listener) {
        inner.addHandshakeCompletedListener(listener);
    }

    @Override
    public void removeHandshakeCompletedListener(HandshakeCompletedListener listener) {
        inner.removeHandshakeCompletedListener(listener);
    }

    @Override
    public void setUseClientMode(boolean mode) {
        inner.setUseClientMode(mode);
    }

    @Override
    public boolean getUseClientMode() {
        return inner.getUseClientMode();
    }

    @Override
    public void setNeedClientAuth(boolean need) {
        inner.setNeedClientAuth(need);
    }

    @Override
    public boolean getNeedClientAuth() {
        return inner.getNeedClientAuth();
    }

    @Override
    public void setWantClientAuth(boolean want) {
        inner.setWantClientAuth(want);
    }

    @Override
    public boolean getWantClientAuth() {
        return inner.getWantClientAuth();
    }

    @Override
    public void setEnableSessionCreation(boolean flag) {
        inner.setEnableSessionCreation(flag);
    }

    @Override
    public boolean getEnableSessionCreation() {
        return inner.getEnableSessionCreation();
    }

    @Override
    public SSLParameters getSSLParameters() {
        return inner.getSSLParameters();
    }

    @Override
    public void setSSLParameters(SSLParameters params) {
        inner.setSSLParameters(params);
    }

    @Override
    public String getApplicationProtocol() {
        return inner.getApplicationProtocol();
    }

    @Override
    public String getHandshakeApplicationProtocol() {
        return inner.getHandshakeApplicationProtocol();
    }

    @Override
    public void setHandshakeApplicationProtocolSelector(BiFunction<SSLSocket, List<String>, String> selector) {
        inner.setHandshakeApplicationProtocolSelector(selector);
    }

    @Override
    public BiFunction<SSLSocket, List<String>, String> getHandshakeApplicationProtocolSelector() {
        return inner.getHandshakeApplicationProtocolSelector();
    }

    // ---- socket delegation --------------------------------------------------------------------------------

    @Override
    public void connect(SocketAddress endpoint) throws IOException {
        inner.connect(endpoint);
    }

    @Override
    public void connect(SocketAddress endpoint, int timeout) throws IOException {
        inner.connect(endpoint, timeout);
    }

    @Override
    public void bind(SocketAddress bindpoint) throws IOException {
        inner.bind(bindpoint);
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
        synchronized (timeoutLock) {
            if (timeout < 0) {
                throw new IllegalArgumentException("timeout < 0");
            }
            soTimeout = timeout;
            if (!polling) {
                inner.setSoTimeout(timeout);
            }
        }
    }

    @Override
    public int getSoTimeout() {
        synchronized (timeoutLock) {
            return soTimeout;
        }
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
