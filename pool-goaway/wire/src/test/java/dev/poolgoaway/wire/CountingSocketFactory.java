package dev.poolgoaway.wire;

import java.io.IOException;
import java.net.InetAddress;
import java.net.Socket;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

import javax.net.SocketFactory;

/**
 * A user's own {@code socketFactory}, as pool-goaway wraps it: counts the TCP connections opened through it, under
 * the name given as {@code socketFactoryArg}. Every connection the wire layer opens (a replay included) and every
 * cancel request pgjdbc sends comes from here, so the count is what the peer sees.
 */
public final class CountingSocketFactory extends SocketFactory {

    private static final Map<String, AtomicInteger> COUNTS = new ConcurrentHashMap<>();

    private final AtomicInteger count;

    /** @param name the counter, from {@code socketFactoryArg} */
    public CountingSocketFactory(String name) {
        this.count = COUNTS.computeIfAbsent(name, n -> new AtomicInteger());
    }

    /** @return how many sockets were created under {@code name} */
    static int count(String name) {
        AtomicInteger c = COUNTS.get(name);
        return c == null ? 0 : c.get();
    }

    @Override
    public Socket createSocket() {
        count.incrementAndGet();
        return new Socket();
    }

    @Override
    public Socket createSocket(String host, int port) throws IOException {
        count.incrementAndGet();
        return new Socket(host, port);
    }

    @Override
    public Socket createSocket(String host, int port, InetAddress localHost, int localPort) throws IOException {
        count.incrementAndGet();
        return new Socket(host, port, localHost, localPort);
    }

    @Override
    public Socket createSocket(InetAddress host, int port) throws IOException {
        count.incrementAndGet();
        return new Socket(host, port);
    }

    @Override
    public Socket createSocket(InetAddress address, int port, InetAddress localAddress, int localPort)
            throws IOException {
        count.incrementAndGet();
        return new Socket(address, port, localAddress, localPort);
    }
}
