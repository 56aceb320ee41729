package dev.poolgoaway.wire;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;

import javax.net.ssl.SSLException;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;

/**
 * The TLS socket pgjdbc gets from {@link GoAwaySslSocketFactory}: the delegate factory's {@link SSLSocket} with
 * the wire layer's filters on its plaintext streams. Handshake, session (SCRAM channel binding reads the server
 * certificate from it) and hostname verification are the delegate's, untouched.
 */
final class FilteringSslSocket extends DelegatingSslSocket
        implements SignalSource, BackendInputStream.EncryptedTransport {

    /** How long an idle poll may wait for the rest of a TLS record that has begun to arrive. */
    static final int POLL_READ_MILLIS = 5;

    /** SSLRequest: the request header alone. */
    private static final byte[] SSL_REQUEST = new byte[Protocol.REQUEST_HEADER_LENGTH];

    static {
        Protocol.writeInt(SSL_REQUEST, 0, SSL_REQUEST.length);
        Protocol.writeInt(SSL_REQUEST, 4, Protocol.SSL_REQUEST_CODE);
    }

    /** Runs after a successful handshake: reports what the delegate factory deferred (client key problems). */
    interface HandshakeCheck {
        void afterHandshake() throws IOException;
    }

    /**
     * What pgjdbc does around a TLS handshake, for a replay to do the same: how long it waits for the answer to
     * SSLRequest, how long for the handshake, and its check of the new session (hostname verification for
     * {@code verify-full}; trust is the delegate factory's, checked during the handshake itself).
     */
    interface PgjdbcTls {
        /**
         * @return milliseconds pgjdbc waits for the answer to SSLRequest ({@code ConnectionFactoryImpl.enableSSL}):
         *         {@code sslResponseTimeout}, or {@code socketTimeout} where that is set and shorter
         */
        int sslResponseTimeout();

        /**
         * @return milliseconds pgjdbc allows the handshake ({@code MakeSSL.convert}): {@code connectTimeout}, 0 for
         *         none
         */
        int handshakeTimeout();

        void verifyPeer(String host, SSLSocket socket) throws IOException;
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
    private final PgjdbcTls pgjdbc;
    /**
     * pgjdbc's socket timeout, kept here because an idle poll shortens the real one for a moment: a timeout pgjdbc
     * sets meanwhile must not be lost or overwritten by the poll's restore.
     */
    private final Object timeoutLock = new Object();
    private int soTimeout;
    private boolean polling;
    private FilteredStreams streams;

    FilteringSslSocket(SSLSocketFactory factory, Socket transport, String host, int port, boolean autoClose,
            ConnectionSignals signals, ProtocolUpgrade upgrade, GoAwayRequest request, HandshakeCheck handshakeCheck,
            PgjdbcTls pgjdbc) throws IOException {
        this.pgjdbc = pgjdbc;
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

    private synchronized FilteredStreams streams() throws IOException {
        if (streams == null) {
            // A replay needs the plain socket to reconnect; a TLS socket over another kind of transport cannot.
            streams = FilteredStreams.open(inner, host + ":" + port, transport instanceof FilteringSocket, this,
                    this::reconnectAndReplay, signals, upgrade, request);
        }
        return streams;
    }

    @Override
    public InputStream getInputStream() throws IOException {
        return streams().in();
    }

    @Override
    public OutputStream getOutputStream() throws IOException {
        return streams().out();
    }

    /**
     * For a peer that failed on the raised protocol version: the new connection is made as pgjdbc made this one
     * (see {@link FilteringSocket#reopen}), TLS through the same factory call with pgjdbc's host, the answer
     * within pgjdbc's {@code sslResponseTimeout} and the handshake within its {@code connectTimeout} (as pgjdbc's
     * {@code enableSSL} and {@code MakeSSL} bound them), and the new session checked as pgjdbc checks one
     * (the factory's trust during the handshake, then hostname verification for {@code verify-full}): behind one
     * address another node with its own valid certificate may answer, as it may answer pgjdbc itself. Then
     * pgjdbc's StartupMessage as pgjdbc wrote it.
     */
    private InputStream reconnectAndReplay(ProtocolUpgrade.Attempt failed) throws IOException {
        FilteringSocket plain = (FilteringSocket) transport;
        SSLSocket old = inner;
        SSLParameters parameters = old.getSSLParameters();
        boolean direct = plain.directTls();
        int timeout = getSoTimeout();
        plain.reopen(old);
        plain.setSoTimeout(pgjdbc.sslResponseTimeout());
        if (!direct) {
            OutputStream request = plain.getOutputStream();
            request.write(SSL_REQUEST);
            request.flush();
            int answer = plain.getInputStream().read();
            if (answer != Protocol.ANSWER_TLS) {
                throw new SSLException(host + ":" + port + " no longer offers TLS (answered SSLRequest with "
                        + answer + ") on reconnect");
            }
        }
        SSLSocket fresh = (SSLSocket) factory.createSocket(plain, host, port, true);
        try {
            fresh.setSoTimeout(pgjdbc.handshakeTimeout());
            fresh.setSSLParameters(parameters);
            fresh.setUseClientMode(true);
            fresh.startHandshake();
            handshakeCheck.afterHandshake();
            pgjdbc.verifyPeer(host, fresh);
            fresh.setSoTimeout(timeout);
        } catch (IOException e) {
            fresh.close();
            throw e;
        }
        inner = fresh;
        streams().out().replayStartup(fresh.getOutputStream(), failed);
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

    @Override
    protected SSLSocket delegate() {
        return inner;
    }

    // ---- what the delegation base does not just hand on ----------------------------------------

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
    public String toString() {
        return "pool-goaway " + inner;
    }
}
