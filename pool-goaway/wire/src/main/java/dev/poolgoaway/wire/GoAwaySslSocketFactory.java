package dev.poolgoaway.wire;

import java.io.IOException;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketException;
import java.time.Clock;
import java.util.Properties;

import javax.net.ssl.HostnameVerifier;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;

import org.postgresql.PGProperty;
import org.postgresql.jdbc.SslMode;
import org.postgresql.ssl.PGjdbcHostnameVerifier;
import org.postgresql.ssl.LibPQFactory;
import org.postgresql.util.ObjectFactory;
import org.postgresql.util.PSQLException;

/**
 * pgjdbc's {@code sslfactory} for the wire layer: it lets the real factory build the TLS socket (certificates,
 * {@code sslmode}, keys: all unchanged) and runs the wire layer's filters on the plaintext streams of the result.
 *
 * <p>The real factory is the one named by {@value PgGoAway#DELEGATE_SSL_FACTORY}, instantiated the way pgjdbc
 * would (with {@code sslfactoryarg}), or pgjdbc's default {@link LibPQFactory}. pgjdbc only layers TLS over its own
 * socket, so only {@link #createSocket(Socket, String, int, boolean)} is supported.
 */
public final class GoAwaySslSocketFactory extends SSLSocketFactory {

    private static final String LIBPQ_FACTORY = LibPQFactory.class.getName();
    private static final String LEGACY_LIBPQ_FACTORY = "org.postgresql.ssl.jdbc4.LibPQFactory";

    private final SSLSocketFactory delegate;
    private final GoAwayRequest request;
    private final Properties info;

    /**
     * Called by pgjdbc with the connection's properties.
     *
     * @param info the connection properties
     * @throws IOException if the delegate factory cannot be instantiated (bad key or certificate files included)
     */
    public GoAwaySslSocketFactory(Properties info) throws IOException {
        request = GoAwaySocketFactory.requestOf(info);
        this.info = info;
        String name = info.getProperty(PgGoAway.DELEGATE_SSL_FACTORY);
        try {
            if (name == null || name.isBlank() || LIBPQ_FACTORY.equals(name.trim())
                    || LEGACY_LIBPQ_FACTORY.equals(name.trim())) {
                delegate = new LibPQFactory(info);
            } else {
                delegate = ObjectFactory.instantiate(SSLSocketFactory.class, name.trim(), info, true,
                        PGProperty.SSL_FACTORY_ARG.getOrDefault(info));
            }
        } catch (Exception e) {
            throw new IOException("pool-goaway could not instantiate the SSL socket factory "
                    + (name == null ? LIBPQ_FACTORY : name) + ": " + e.getMessage(), e);
        }
    }

    @Override
    public Socket createSocket(Socket s, String host, int port, boolean autoClose) throws IOException {
        ConnectionSignals signals = s instanceof SignalSource source
                ? source.signals()
                : new ConnectionSignals(Clock.systemUTC());
        return new FilteringSslSocket(delegate, s, host, port, autoClose, signals, ProtocolUpgrade.SHARED, request,
                this::afterHandshake, new PgjdbcChecks());
    }

    /** What pgjdbc's MakeSSL does around its handshake, with the connection's properties. */
    private final class PgjdbcChecks implements FilteringSslSocket.PgjdbcTls {
        @Override
        public int sslResponseTimeout() {
            int answer = property(PGProperty.SSL_RESPONSE_TIMEOUT);
            int socket = property(PGProperty.SOCKET_TIMEOUT) * 1000;
            return socket > 0 && socket < answer ? socket : answer;
        }

        @Override
        public int handshakeTimeout() {
            return property(PGProperty.CONNECT_TIMEOUT) * 1000;
        }

        /** @return the property as pgjdbc reads it; its default where the value is not a number (pgjdbc failed) */
        private int property(PGProperty property) {
            try {
                return property.getInt(info);
            } catch (PSQLException e) {
                return Integer.parseInt(property.getDefaultValue());
            }
        }

        @Override
        public void verifyPeer(String host, SSLSocket socket) throws IOException {
            HostnameVerifier verifier;
            try {
                if (!SslMode.of(info).verifyPeerName()) {
                    return;
                }
                String name = PGProperty.SSL_HOSTNAME_VERIFIER.getOrDefault(info);
                verifier = name == null || name.isBlank() ? PGjdbcHostnameVerifier.INSTANCE
                        : ObjectFactory.instantiate(HostnameVerifier.class, name, info, false, null);
            } catch (Exception e) {
                throw new SSLException("pool-goaway could not verify the server's name as pgjdbc would: " + e, e);
            }
            if (!verifier.verify(host, socket.getSession())) {
                throw new SSLPeerUnverifiedException("The hostname " + host
                        + " could not be verified by hostnameverifier " + verifier.getClass().getName()
                        + " (on the connection pool-goaway reopened for pgjdbc's own startup request)");
            }
        }
    }

    /**
     * pgjdbc reports client key problems that {@link LibPQFactory} deferred, but only when the factory it holds is
     * one; it holds us, so we do it.
     */
    private void afterHandshake() throws IOException {
        if (delegate instanceof LibPQFactory libpq) {
            try {
                libpq.throwKeyManagerException();
            } catch (PSQLException e) {
                throw new SSLException(e.getMessage(), e);
            }
        }
    }

    @Override
    public String[] getDefaultCipherSuites() {
        return delegate.getDefaultCipherSuites();
    }

    @Override
    public String[] getSupportedCipherSuites() {
        return delegate.getSupportedCipherSuites();
    }

    @Override
    public Socket createSocket(String host, int port) throws IOException {
        throw notLayered();
    }

    @Override
    public Socket createSocket(String host, int port, InetAddress localHost, int localPort) throws IOException {
        throw notLayered();
    }

    @Override
    public Socket createSocket(InetAddress host, int port) throws IOException {
        throw notLayered();
    }

    @Override
    public Socket createSocket(InetAddress address, int port, InetAddress localAddress, int localPort)
            throws IOException {
        throw notLayered();
    }

    private static SocketException notLayered() {
        return new SocketException("pool-goaway layers TLS over an existing socket only "
                + "(createSocket(Socket, String, int, boolean)), as pgjdbc does");
    }
}
