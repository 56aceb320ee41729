package dev.poolgoaway.testkit;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/** The few backend messages the proxy writes itself, and the integers it reads and writes. */
final class Wire {

    static final int SSL_REQUEST = 80877103;
    static final int GSSENC_REQUEST = 80877104;
    static final int CANCEL_REQUEST = 80877102;
    /** PostgreSQL refuses a StartupMessage longer than this (MAX_STARTUP_PACKET_LENGTH). */
    static final int MAX_STARTUP_LENGTH = 10_000;
    /** The server cuts an admin message at 127 bytes (BACKEND_MSG_MAX_LEN 128, with the terminator). */
    static final int MAX_ADMIN_MESSAGE_BYTES = 127;

    static final byte[] GO_AWAY = {'g', 0, 0, 0, 4};

    private Wire() {
    }

    /**
     * Serves every connection the listener accepts, each on a daemon thread of its own, from a daemon acceptor
     * thread that ends when the listener is closed: the test kit's peers all serve this way.
     *
     * @param listener the listening socket
     * @param name     the threads' name prefix
     * @param serve    what to do with one accepted connection
     */
    static void serveEach(ServerSocket listener, String name, Consumer<Socket> serve) {
        Thread acceptor = new Thread(() -> {
            while (!listener.isClosed()) {
                try {
                    Socket s = listener.accept();
                    Thread t = new Thread(() -> serve.accept(s), name + "-conn");
                    t.setDaemon(true);
                    t.start();
                } catch (IOException e) {
                    return;
                }
            }
        }, name + "-accept");
        acceptor.setDaemon(true);
        acceptor.start();
    }

    /**
     * Relays bytes both ways between two connected sockets until either side closes, then closes both: the
     * client-to-upstream direction on the calling thread, the other on a daemon thread.
     *
     * @param client   the accepted connection
     * @param upstream the connection to where it goes
     * @param name     the other thread's name
     */
    static void relay(Socket client, Socket upstream, String name) {
        Thread back = new Thread(() -> pump(upstream, client), name);
        back.setDaemon(true);
        back.start();
        pump(client, upstream);
    }

    private static void pump(Socket from, Socket to) {
        try {
            InputStream in = from.getInputStream();
            OutputStream out = to.getOutputStream();
            byte[] buffer = new byte[8192];
            for (int n; (n = in.read(buffer)) >= 0; ) {
                out.write(buffer, 0, n);
                out.flush();
            }
        } catch (IOException ignored) {
            // one side closed: close both below
        } finally {
            closeQuietly(from);
            closeQuietly(to);
        }
    }

    /** Closes a socket, ignoring what closing it says. */
    static void closeQuietly(Socket s) {
        try {
            s.close();
        } catch (IOException ignored) {
            // closing
        }
    }

    /** An ErrorResponse the way PostgreSQL formats it: S and V severity, SQLSTATE, message. */
    static byte[] error(String severity, String sqlState, String message) {
        return error(severity, sqlState, message, "");
    }

    /** @return an ErrorResponse, with a DETAIL field unless {@code detail} is empty */
    static byte[] error(String severity, String sqlState, String message, String detail) {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        field(body, 'S', severity);
        field(body, 'V', severity);
        field(body, 'C', sqlState);
        field(body, 'M', message);
        if (!detail.isEmpty()) {
            field(body, 'D', detail);
        }
        body.write(0);
        return message('E', body.toByteArray());
    }

    /** @return a StartupMessage body without the parameter {@code name} (and its value) */
    static byte[] withoutParameter(byte[] body, String name) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(body.length);
        startupParameters(body).forEach((n, v) -> {
            if (!n.equals(name)) {
                cstring(out, n);
                cstring(out, v);
            }
        });
        out.write(0);
        return out.toByteArray();
    }

    static byte[] parameterStatus(String name, String value) {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        cstring(body, name);
        cstring(body, value);
        return message('S', body.toByteArray());
    }

    /** @return a NegotiateProtocolVersion offering 3.{@code minor} and listing {@code unsupported} options */
    static byte[] negotiateProtocolVersion(int minor, List<String> unsupported) {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        byte[] head = new byte[8];
        writeInt(head, 0, (3 << 16) | minor);
        writeInt(head, 4, unsupported.size());
        body.writeBytes(head);
        unsupported.forEach(option -> cstring(body, option));
        return message('v', body.toByteArray());
    }

    /** @return the parameters of a StartupMessage body (name, value, ..., a final NUL), by name in order */
    static Map<String, String> startupParameters(byte[] body) {
        Map<String, String> parameters = new LinkedHashMap<>();
        int p = 0;
        while (p < body.length && body[p] != 0) {
            int nameEnd = indexOfNul(body, p);
            int valueEnd = nameEnd < 0 ? -1 : indexOfNul(body, nameEnd + 1);
            if (valueEnd < 0) {
                break;
            }
            parameters.put(new String(body, p, nameEnd - p, StandardCharsets.UTF_8),
                    new String(body, nameEnd + 1, valueEnd - nameEnd - 1, StandardCharsets.UTF_8));
            p = valueEnd + 1;
        }
        return parameters;
    }

    /** @return the names of the {@code _pq_.} protocol options among a StartupMessage body's parameters */
    static List<String> protocolOptions(byte[] body) {
        return startupParameters(body).keySet().stream().filter(n -> n.startsWith("_pq_.")).toList();
    }

    private static int indexOfNul(byte[] b, int from) {
        for (int i = from; i < b.length; i++) {
            if (b[i] == 0) {
                return i;
            }
        }
        return -1;
    }

    static byte[] message(char type, byte[] body) {
        byte[] m = new byte[5 + body.length];
        m[0] = (byte) type;
        writeInt(m, 1, 4 + body.length);
        System.arraycopy(body, 0, m, 5, body.length);
        return m;
    }

    /** An admin message as the server keeps it: at most 127 bytes of UTF-8, never a split character. */
    static String adminMessage(String message) {
        byte[] utf8 = message.getBytes(StandardCharsets.UTF_8);
        if (utf8.length <= MAX_ADMIN_MESSAGE_BYTES) {
            return message;
        }
        int end = MAX_ADMIN_MESSAGE_BYTES;
        while (end > 0 && (utf8[end] & 0xC0) == 0x80) {
            end--;
        }
        return new String(utf8, 0, end, StandardCharsets.UTF_8);
    }

    static int readInt(byte[] b, int at) {
        return ByteBuffer.wrap(b).getInt(at);
    }

    static void writeInt(byte[] b, int at, int v) {
        ByteBuffer.wrap(b).putInt(at, v);
    }

    /** Reads exactly {@code n} bytes, or null at a clean end of stream before the first. */
    static byte[] readExactly(DataInputStream in, int n) throws IOException {
        byte[] b = new byte[n];
        int first = in.read(b, 0, n);
        if (first < 0) {
            return null;
        }
        in.readFully(b, first, n - first);
        return b;
    }

    private static void field(ByteArrayOutputStream out, char code, String value) {
        out.write(code);
        cstring(out, value);
    }

    private static void cstring(ByteArrayOutputStream out, String value) {
        out.writeBytes(value.getBytes(StandardCharsets.UTF_8));
        out.write(0);
    }
}
