package dev.poolgoaway.wire;

import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.util.function.IntSupplier;

/** Hands out a byte array in chunks of the sizes it is told, like a socket would. */
final class ChunkedInputStream extends InputStream {

    private final ByteArrayInputStream in;
    private final IntSupplier chunk;

    ChunkedInputStream(byte[] data, IntSupplier chunk) {
        this.in = new ByteArrayInputStream(data);
        this.chunk = chunk;
    }

    @Override
    public int read() {
        return in.read();
    }

    @Override
    public int read(byte[] b, int off, int len) {
        return in.read(b, off, Math.min(len, Math.max(1, chunk.getAsInt())));
    }

    @Override
    public int available() {
        return in.available();
    }
}
