package dev.poolgoaway.wire;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.time.Clock;
import java.util.Properties;

import javax.net.SocketFactory;

import org.postgresql.PGProperty;
import org.postgresql.util.ObjectFactory;

/**
 * pgjdbc's {@code socketFactory} for the wire layer: sockets whose streams record GoAway and the other server
 * signals, and ask the server for GoAway on pgjdbc's behalf (see {@link ProtocolUpgrade}).
 *
 * <p>Install it with {@link PgGoAway#install(Properties)} rather than by hand. pgjdbc creates one instance per
 * connection attempt with the connection's properties. The sockets come from the factory named by
 * {@value PgGoAway#DELEGATE_SOCKET_FACTORY} (instantiated the way pgjdbc would, with {@code socketFactoryArg}),
 * or from the JDK's default factory.
 */
public final class GoAwaySocketFactory extends SocketFactory {

    private final SocketFactory delegate;
    private final String group;
    private final GoAwayRequest request;

    /**
     * Called by pgjdbc with the connection's properties.
     *
     * @param info the connection properties
     * @throws IOException if the delegate factory named in the properties cannot be instantiated
     */
    public GoAwaySocketFactory(Properties info) throws IOException {
        group = info.getProperty(PgGoAway.GROUP);
        request = requestOf(info);
        String name = info.getProperty(PgGoAway.DELEGATE_SOCKET_FACTORY);
        if (name == null || name.isBlank()) {
            delegate = SocketFactory.getDefault();
        } else {
            try {
                delegate = ObjectFactory.instantiate(SocketFactory.class, name.trim(), info, true,
                        PGProperty.SOCKET_FACTORY_ARG.getOrDefault(info));
            } catch (Exception e) {
                throw new IOException("pool-goaway could not instantiate the socket factory " + name + " named by "
                        + PgGoAway.DELEGATE_SOCKET_FACTORY + ": " + e, e);
            }
        }
    }

    @Override
    public Socket createSocket() throws IOException {
        return new FilteringSocket(delegate, ProtocolUpgrade.SHARED, Clock.systemUTC(), group, request);
    }

    /** @throws IOException for settings {@link PgGoAway#install} would have refused: pgjdbc reports it */
    static GoAwayRequest requestOf(Properties info) throws IOException {
        try {
            return GoAwayRequest.from(info);
        } catch (IllegalArgumentException e) {
            throw new IOException("pool-goaway: " + e.getMessage(), e);
        }
    }

    @Override
    public Socket createSocket(String host, int port) throws IOException {
        return connected(new InetSocketAddress(host, port));
    }

    @Override
    public Socket createSocket(String host, int port, InetAddress localHost, int localPort) throws IOException {
        return connected(new InetSocketAddress(host, port), new InetSocketAddress(localHost, localPort));
    }

    @Override
    public Socket createSocket(InetAddress host, int port) throws IOException {
        return connected(new InetSocketAddress(host, port));
    }

    @Override
    public Socket createSocket(InetAddress address, int port, InetAddress localAddress, int localPort)
            throws IOException {
        return connected(new InetSocketAddress(address, port), new InetSocketAddress(localAddress, localPort));
    }

    private Socket connected(InetSocketAddress remote, InetSocketAddress... local) throws IOException {
        Socket s = createSocket();
        try {
            for (InetSocketAddress l : local) {
                s.bind(l);
            }
            s.connect(remote);
            return s;
        } catch (IOException e) {
            s.close();
            throw e;
        }
    }
}
