package dev.poolgoaway.testkit;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A small SOCKS5 proxy (RFC 1928, CONNECT without authentication) on loopback, for the socket path pgjdbc takes
 * with {@code socksProxyHost}: pgjdbc leaves the host name unresolved and the proxy resolves it. Names resolve only
 * through the table given at start ({@code name:port} to a loopback address), so a test can name a server the
 * client machine cannot resolve; any other destination is refused (reply 0x02), so nothing leaves loopback.
 *
 * <p>{@link #requests()} lists every destination asked for, as {@code name:port} (or {@code address:port}).
 */
public final class Socks5Proxy implements AutoCloseable {

    private final ServerSocket listener;
    private final Map<String, InetSocketAddress> routes;
    private final List<String> requests = new CopyOnWriteArrayList<>();
    private final List<Socket> sockets = new CopyOnWriteArrayList<>();

    private Socks5Proxy(Map<String, InetSocketAddress> routes) throws IOException {
        this.routes = new ConcurrentHashMap<>(routes);
        for (InetSocketAddress target : routes.values()) {
            if (!target.getAddress().isLoopbackAddress()) {
                throw new IllegalArgumentException("loopback targets only: " + target);
            }
        }
        this.listener = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        Wire.serveEach(listener, "socks5", client -> {
            sockets.add(client);
            serve(client);
        });
    }

    /**
     * @param routes destination ({@code name:port} as the client names it) to the loopback address it resolves to
     * @return a running proxy on a free loopback port
     * @throws IOException if it cannot listen
     */
    public static Socks5Proxy start(Map<String, InetSocketAddress> routes) throws IOException {
        return new Socks5Proxy(routes);
    }

    /** @return the port the proxy listens on (on the loopback address) */
    public int port() {
        return listener.getLocalPort();
    }

    /** @return every CONNECT destination asked for, in order */
    public List<String> requests() {
        return List.copyOf(requests);
    }

    private void serve(Socket client) {
        try {
            DataInputStream in = new DataInputStream(client.getInputStream());
            OutputStream out = client.getOutputStream();
            if (in.readUnsignedByte() != 5) {
                client.close();
                return;
            }
            in.skipNBytes(in.readUnsignedByte());
            out.write(new byte[] {5, 0}); // no authentication
            int version = in.readUnsignedByte();
            int command = in.readUnsignedByte();
            in.readUnsignedByte();
            String host = switch (in.readUnsignedByte()) {
                case 1 -> InetAddress.getByAddress(in.readNBytes(4)).getHostAddress();
                case 3 -> new String(in.readNBytes(in.readUnsignedByte()), StandardCharsets.US_ASCII);
                case 4 -> InetAddress.getByAddress(in.readNBytes(16)).getHostAddress();
                default -> throw new IOException("unknown address type");
            };
            int port = in.readUnsignedShort();
            String destination = host + ":" + port;
            requests.add(destination);
            InetSocketAddress target = routes.get(destination);
            if (version != 5 || command != 1 || target == null) {
                out.write(new byte[] {5, 2, 0, 1, 0, 0, 0, 0, 0, 0}); // not allowed by ruleset
                client.close();
                return;
            }
            Socket upstream = new Socket();
            sockets.add(upstream);
            try {
                upstream.connect(target, 5000);
            } catch (IOException e) {
                out.write(new byte[] {5, 5, 0, 1, 0, 0, 0, 0, 0, 0}); // connection refused
                client.close();
                return;
            }
            // Bound address 0.0.0.0:0, as many proxies answer: a client must not take it for the server's.
            out.write(new byte[] {5, 0, 0, 1, 0, 0, 0, 0, 0, 0});
            out.flush();
            Wire.relay(client, upstream, "socks5-pump");
        } catch (IOException e) {
            Wire.closeQuietly(client);
        }
    }

    @Override
    public void close() throws IOException {
        listener.close();
        for (Socket s : sockets) {
            Wire.closeQuietly(s);
        }
    }
}
