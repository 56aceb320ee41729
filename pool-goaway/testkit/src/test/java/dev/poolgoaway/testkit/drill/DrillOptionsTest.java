package dev.poolgoaway.testkit.drill;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;

import org.junit.jupiter.api.Test;

class DrillOptionsTest {

    private final DrillOptions options = new DrillOptions("drill")
            .option("pool-size", "20", "connections in the pool")
            .option("before", "5s", "load before the switchover")
            .option("modes", "goaway,hikari", "which drills");

    @Test
    void aProgramRunsWithItsOptionsAndBadInputIsAnExitStatusNotAnExit() throws Exception {
        List<Integer> ran = new java.util.ArrayList<>();
        DrillOptions.Program program = o -> ran.add(Integer.valueOf(o.value("pool-size")));
        assertEquals(DrillOptions.USAGE_ERROR, new DrillOptions("d").option("pool-size", "20", "n")
                .run(new String[] {"--nope=1"}, program), "the JVM is still here to see it");
        assertTrue(ran.isEmpty());
        assertEquals(0, new DrillOptions("d").option("pool-size", "20", "n").run(new String[] {"--help"}, program));
        assertTrue(ran.isEmpty(), "--help prints the usage and runs nothing");
        assertEquals(0, new DrillOptions("d").option("pool-size", "20", "n")
                .run(new String[] {"--pool-size=40"}, program));
        assertEquals(List.of(40), ran);
    }

    @Test
    void defaultsApplyAndGivenValuesWin() {
        assertTrue(options.parse("--before=1500ms"));
        assertEquals(20, options.intValue("pool-size", 1, 100));
        assertEquals(Duration.ofMillis(1500), options.duration("before"));
        assertEquals(List.of("goaway", "hikari"), options.list("modes", List.of("goaway", "hikari", "fast")));
    }

    @Test
    void durationsTakeTheUsualUnits() {
        for (String[] c : new String[][] {{"250ms", "PT0.25S"}, {"2.5s", "PT2.5S"}, {"2m", "PT2M"}, {"PT3S", "PT3S"}}) {
            DrillOptions o = new DrillOptions("d").option("t", "1s", "t");
            o.parse("--t=" + c[0]);
            assertEquals(Duration.parse(c[1]), o.duration("t"), c[0]);
        }
    }

    @Test
    void badInputNamesTheArgumentAndTheChoices() {
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class,
                () -> options.parse("--pool=3"));
        assertTrue(unknown.getMessage().contains("unknown argument --pool=3"));
        assertTrue(unknown.getMessage().contains("--pool-size="), "the usage lists the options");

        options.parse("--pool-size=0", "--before=5", "--modes=goaway,blue");
        assertTrue(assertThrows(IllegalArgumentException.class, () -> options.intValue("pool-size", 1, 100))
                .getMessage().contains("--pool-size must be between 1 and 100, got 0"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> options.duration("before")).getMessage()
                .contains("needs a unit"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> options.list("modes", List.of("goaway", "hikari"))).getMessage().contains("unknown blue"));
    }

    @Test
    void helpStopsAndTheUsageShowsDefaults() {
        assertFalse(options.parse("--help"));
        assertTrue(options.usage().contains("connections in the pool (default 20)"), options.usage());
    }

    @Test
    void theSharedDrillOptionsHaveDefaultsAndTheirOwnChecks() {
        DrillOptions drill = DrillOptions.forDrills("drill").option("extra", "x", "a program's own option");
        assertTrue(drill.parse("--rate=0", "--extra=y"));
        assertEquals(20, drill.intValue("pool-size", 1, 500));
        assertEquals(20, drill.poolSize());
        assertEquals("60", drill.serverConfig().get("max_connections"), "two pools of 20 and the drill's own");
        assertEquals(0, drill.intValue("rate", 0, 1_000_000));
        assertEquals(Duration.ofSeconds(20), drill.duration("window"));
        assertEquals("y", drill.value("extra"));
        assertTrue(drill.usage().contains("--workers="), drill.usage());
    }
}
