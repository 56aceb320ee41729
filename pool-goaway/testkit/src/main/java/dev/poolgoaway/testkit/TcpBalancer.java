package dev.poolgoaway.testkit;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;

/**
 * A TCP load balancer on loopback: each new connection goes to the next node in turn (round robin), bytes relayed
 * unchanged both ways, TLS included, so every node presents its own certificate, as behind a layer-4 balancer (an
 * NLB, a Kubernetes Service, HAProxy in TCP mode). {@link #connections(int)} counts what reached each node.
 */
public final class TcpBalancer implements AutoCloseable {

    private final ServerSocket listener;
    private final List<InetSocketAddress> nodes;
    private final AtomicInteger next = new AtomicInteger();
    private final AtomicIntegerArray counts;
    private final List<Socket> sockets = new CopyOnWriteArrayList<>();

    private TcpBalancer(List<InetSocketAddress> nodes) throws IOException {
        this.nodes = List.copyOf(nodes);
        this.counts = new AtomicIntegerArray(nodes.size());
        this.listener = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        Wire.serveEach(listener, "tcp-balancer", this::serve);
    }

    /**
     * @param nodes the servers behind it, in turn order; loopback addresses only
     * @return a running balancer on a free loopback port
     * @throws IOException if it cannot listen
     * @throws IllegalArgumentException if there is no node, or one is not on loopback
     */
    public static TcpBalancer start(List<InetSocketAddress> nodes) throws IOException {
        if (nodes.isEmpty()) {
            throw new IllegalArgumentException("no node to balance to");
        }
        for (InetSocketAddress node : nodes) {
            if (node.getAddress() == null || !node.getAddress().isLoopbackAddress()) {
                throw new IllegalArgumentException("loopback nodes only: " + node);
            }
        }
        return new TcpBalancer(nodes);
    }

    /** @return the port it listens on, on the loopback address */
    public int port() {
        return listener.getLocalPort();
    }

    /**
     * @param node a node's index, in the order given at start
     * @return how many connections were sent to it so far
     */
    public int connections(int node) {
        return counts.get(node);
    }

    private void serve(Socket client) {
        sockets.add(client);
        int node = Math.floorMod(next.getAndIncrement(), nodes.size());
        counts.incrementAndGet(node);
        Socket upstream = new Socket();
        sockets.add(upstream);
        try {
            upstream.connect(nodes.get(node), 5000);
        } catch (IOException e) {
            // As a balancer with a dead node does: the client's connection just closes.
            Wire.closeQuietly(client);
            Wire.closeQuietly(upstream);
            return;
        }
        Wire.relay(client, upstream, "tcp-balancer-pump");
    }

    @Override
    public void close() throws IOException {
        listener.close();
        for (Socket s : sockets) {
            Wire.closeQuietly(s);
        }
    }
}
