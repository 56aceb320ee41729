package dev.poolgoaway.hikari;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/**
 * What this JVM writes to standard error (slf4j-simple's log, which writes to {@code System.err} as it is at each
 * line), copied while the tap is open, so that a test can assert on the WARN and INFO lines a scenario printed.
 */
final class LogTap implements AutoCloseable {
    private final PrintStream original = System.err;
    private final ByteArrayOutputStream copy = new ByteArrayOutputStream();

    LogTap() {
        System.setErr(new PrintStream(new OutputStream() {
            @Override
            public void write(int b) {
                write(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public void write(byte[] b, int off, int len) {
                original.write(b, off, len);
                synchronized (copy) {
                    copy.write(b, off, len);
                }
            }
        }, true, StandardCharsets.UTF_8));
    }

    /** @return true if some line written so far contains {@code text} */
    boolean contains(String text) {
        return text().contains(text);
    }

    /** @return true if some line written so far is at {@code level} (INFO, WARN, ...) and contains {@code text} */
    boolean logged(String level, String text) {
        return text().lines().anyMatch(line -> line.contains(" " + level + " ") && line.contains(text));
    }

    private String text() {
        synchronized (copy) {
            return copy.toString(StandardCharsets.UTF_8);
        }
    }

    @Override
    public void close() {
        System.setErr(original);
    }
}
