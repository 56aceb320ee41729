package dev.poolgoaway.wire;

import java.io.IOException;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketException;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;

import javax.net.SocketFactory;

/**
 * A user's own {@code socketFactory} that records, per socket, the socket options set on it, under the name given
 * as {@code socketFactoryArg}. (Connector-style factories, whose sockets come connected, are
 * {@link ConnectorSocketFactory}.)
 */
public final class RecordingSocketFactory extends SocketFactory {

    private static final Map<String, List<List<String>>> SOCKETS = new ConcurrentHashMap<>();

    private final List<List<String>> sockets;

    /** @param name the name the sockets are recorded under */
    public RecordingSocketFactory(String name) {
        sockets = SOCKETS.computeIfAbsent(name, n -> new CopyOnWriteArrayList<>());
    }

    /** @return for each socket created under {@code name}, in order, the options set on it as {@code option=value} */
    static List<List<String>> sockets(String name) {
        return SOCKETS.getOrDefault(name, List.of());
    }

    @Override
    public Socket createSocket() throws IOException {
        List<String> set = new CopyOnWriteArrayList<>();
        sockets.add(set);
        Socket s = new Socket() {
            @Override
            public void setTcpNoDelay(boolean on) throws SocketException {
                set.add("tcpNoDelay=" + on);
                super.setTcpNoDelay(on);
            }

            @Override
            public void setKeepAlive(boolean on) throws SocketException {
                set.add("keepAlive=" + on);
                super.setKeepAlive(on);
            }

            @Override
            public synchronized void setSoTimeout(int timeout) throws SocketException {
                set.add("soTimeout=" + timeout);
                super.setSoTimeout(timeout);
            }

            @Override
            public void setReceiveBufferSize(int size) throws SocketException {
                set.add("receiveBufferSize=" + size);
                super.setReceiveBufferSize(size);
            }

            @Override
            public void setSendBufferSize(int size) throws SocketException {
                set.add("sendBufferSize=" + size);
                super.setSendBufferSize(size);
            }
        };
        return s;
    }

    @Override
    public Socket createSocket(String host, int port) {
        throw new UnsupportedOperationException("pgjdbc calls createSocket()");
    }

    @Override
    public Socket createSocket(String host, int port, InetAddress localHost, int localPort) {
        throw new UnsupportedOperationException("pgjdbc calls createSocket()");
    }

    @Override
    public Socket createSocket(InetAddress host, int port) {
        throw new UnsupportedOperationException("pgjdbc calls createSocket()");
    }

    @Override
    public Socket createSocket(InetAddress address, int port, InetAddress localAddress, int localPort) {
        throw new UnsupportedOperationException("pgjdbc calls createSocket()");
    }
}
