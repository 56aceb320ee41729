package dev.poolgoaway.wire;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;

import javax.net.SocketFactory;

/**
 * A connector-style {@code socketFactory}, as Google's Cloud SQL and AlloyDB Java connectors are: its sockets come
 * connected (to the {@code host:port} given as {@code socketFactoryArg}), so pgjdbc, which calls {@code connect} only
 * {@code if (!socket.isConnected())}, never connects them, and the URL's address is never dialled.
 */
public final class ConnectorSocketFactory extends SocketFactory {

    private final InetSocketAddress target;

    /** @param target {@code host:port} every socket connects to */
    public ConnectorSocketFactory(String target) {
        int colon = target.lastIndexOf(':');
        this.target = new InetSocketAddress(target.substring(0, colon), Integer.parseInt(target.substring(colon + 1)));
    }

    @Override
    public Socket createSocket() throws IOException {
        Socket s = new Socket();
        s.connect(target, 10_000);
        return s;
    }

    @Override
    public Socket createSocket(String host, int port) throws IOException {
        return createSocket();
    }

    @Override
    public Socket createSocket(String host, int port, InetAddress localHost, int localPort) throws IOException {
        return createSocket();
    }

    @Override
    public Socket createSocket(InetAddress host, int port) throws IOException {
        return createSocket();
    }

    @Override
    public Socket createSocket(InetAddress address, int port, InetAddress localAddress, int localPort)
            throws IOException {
        return createSocket();
    }
}
