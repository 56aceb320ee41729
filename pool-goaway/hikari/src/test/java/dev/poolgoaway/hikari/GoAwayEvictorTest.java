package dev.poolgoaway.hikari;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Test;

/** The evictor's own thread around the loop: a run that fails is logged, and the loop goes on. */
class GoAwayEvictorTest {

    @Test
    void aLoopThatKeepsFailingLogsItsStackTraceOnceNotEveryTickAndSaysWhenItRunsAgain() {
        AtomicBoolean failing = new AtomicBoolean(true);
        AtomicInteger runs = new AtomicInteger();
        FakePool pool = new FakePool(1) {
            @Override
            public List<Conn> entries() {
                runs.incrementAndGet();
                if (failing.get()) {
                    throw new IllegalStateException("HikariCP moved something");
                }
                return super.entries();
            }
        };
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        PrintStream err = System.err;
        GoAwayEvictor evictor = new GoAwayEvictor(EvictorSettings.builder().tick(Duration.ofMillis(10)).build(), null);
        System.setErr(new PrintStream(captured, true, StandardCharsets.UTF_8));
        try {
            evictor.attach(pool, "failing", null);
            await().until(() -> runs.get() >= 5);
            failing.set(false);
            await().until(() -> captured.toString(StandardCharsets.UTF_8).contains("evictor runs again"));
        } finally {
            evictor.close();
            System.setErr(err);
        }
        List<String> lines = captured.toString(StandardCharsets.UTF_8).lines().toList();
        assertEquals(1, lines.stream().filter(l -> l.contains("run failed; trying again every tick")).count(),
                String.join("\n", lines));
        assertTrue(lines.stream().anyMatch(l -> l.matches(".*runs again, after ([5-9]|\\d\\d+) failed runs")),
                String.join("\n", lines));
        assertTrue(lines.stream().noneMatch(l -> l.contains("still failing")), "not a line a tick");
        assertEquals(1, lines.stream().filter(l -> l.startsWith("java.lang.IllegalStateException")).count(),
                "one stack trace: " + String.join("\n", lines));
    }
}
