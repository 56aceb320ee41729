package dev.poolgoaway.testkit;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A bare protocol client for tests: speaks any 3.x version, trust authentication only, and keeps every backend
 * message it receives (a reader thread files them as they arrive).
 */
final class RawClient implements AutoCloseable {

    /** One backend message. */
    record Message(char type, byte[] body, long receivedNanos) {
        String text() {
            return new String(body, StandardCharsets.UTF_8);
        }
    }

    private final Socket socket;
    private final OutputStream out;
    private final BlockingQueue<Message> inbox = new LinkedBlockingQueue<>();
    private final List<Message> all = java.util.Collections.synchronizedList(new ArrayList<>());
    private final Thread reader;
    final List<Message> startup = new ArrayList<>();

    /** Connects asking for protocol 3.{@code minor}, with {@code extraParameters} (name, value, ...) too. */
    RawClient(int port, int minor, String... extraParameters) throws IOException, InterruptedException {
        socket = new Socket("localhost", port);
        out = socket.getOutputStream();
        ByteArrayOutputStream params = new ByteArrayOutputStream();
        List<String> all = new ArrayList<>(List.of("user", "postgres", "database", "postgres"));
        all.addAll(List.of(extraParameters));
        all.add("");
        for (String s : all) {
            params.writeBytes(s.getBytes(StandardCharsets.UTF_8));
            params.write(0);
        }
        byte[] msg = new byte[8 + params.size()];
        Wire.writeInt(msg, 0, msg.length);
        Wire.writeInt(msg, 4, (3 << 16) | minor);
        System.arraycopy(params.toByteArray(), 0, msg, 8, params.size());
        out.write(msg);
        out.flush();
        reader = new Thread(this::readLoop, "raw-client-reader");
        reader.setDaemon(true);
        reader.start();
        startup.addAll(untilReady());
    }

    private void readLoop() {
        try {
            DataInputStream in = new DataInputStream(socket.getInputStream());
            while (true) {
                int type = in.read();
                if (type < 0) {
                    return;
                }
                byte[] body = new byte[in.readInt() - 4];
                in.readFully(body);
                Message m = new Message((char) type, body, System.nanoTime());
                all.add(m);
                inbox.add(m);
            }
        } catch (IOException e) {
            // closed
        }
    }

    /** Sends a simple Query and returns every message up to and including ReadyForQuery. */
    List<Message> query(String sql) throws IOException, InterruptedException {
        byte[] text = (sql + "\0").getBytes(StandardCharsets.UTF_8);
        out.write(Wire.message('Q', text));
        out.flush();
        return untilReady();
    }

    private List<Message> untilReady() throws InterruptedException {
        List<Message> got = new ArrayList<>();
        while (true) {
            Message m = inbox.poll(10, TimeUnit.SECONDS);
            if (m == null) {
                throw new AssertionError("no ReadyForQuery within 10 s; got " + got);
            }
            got.add(m);
            if (m.type() == 'Z' || (m.type() == 'E' && m.text().contains("FATAL"))) {
                return got;
            }
        }
    }

    /** @return true once a message of this type has arrived (at any time) */
    boolean received(char type) {
        synchronized (all) {
            return all.stream().anyMatch(m -> m.type() == type);
        }
    }

    /** @return every message received so far */
    List<Message> all() {
        synchronized (all) {
            return List.copyOf(all);
        }
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
