package dev.poolgoaway.testkit.drill;

import java.time.Duration;
import java.time.format.DateTimeParseException;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Command-line options of a drill program, {@code --name=value}, each declared with a default and a description so
 * {@code --help} and every error can list them all.
 *
 * <pre>{@code
 * DrillOptions options = new DrillOptions("switchover-drill")
 *         .option("pool-size", "20", "connections in the pool")
 *         .option("before", "5s", "steady load before the switchover");
 * options.parse(args);                       // IllegalArgumentException with the usage on bad input
 * int poolSize = options.intValue("pool-size", 1, 500);
 * Duration before = options.duration("before");
 * }</pre>
 */
public final class DrillOptions {

    private record Option(String defaultValue, String description) {
    }

    private final String program;
    private final Map<String, Option> declared = new LinkedHashMap<>();
    private final Map<String, String> values = new LinkedHashMap<>();
    private boolean help;

    /** A drill program's body, run with its parsed options. */
    @FunctionalInterface
    public interface Program {

        /**
         * @param options the parsed options
         * @throws Exception if the drill cannot run
         */
        void run(DrillOptions options) throws Exception;
    }

    /** @param program the program's name, for the usage text */
    public DrillOptions(String program) {
        this.program = program;
    }

    /**
     * The options every drill program has, for {@link SwitchoverDrill.Builder#load(DrillOptions)}: {@code pool-size},
     * {@code workers}, {@code rate}, {@code before}, {@code after}, {@code window}.
     *
     * @param program the program's name, for the usage text
     * @return the options, to declare the program's own ones on
     */
    public static DrillOptions forDrills(String program) {
        return new DrillOptions(program)
                .option("pool-size", "20", "connections in the pool (minimumIdle = maximumPoolSize)")
                .option("workers", "16", "threads issuing requests")
                .option("rate", "400", "requests per second, all workers together (0 = back to back)")
                .option("before", "5s", "steady load before the switchover")
                .option("after", "5s", "load kept going after the drain")
                .option("window", "20s", "how long to watch a drill that does not drain");
    }

    /**
     * Reads the pool size of {@link #forDrills} options.
     *
     * @return {@code --pool-size}, 1 to 500
     * @throws IllegalArgumentException if it is out of range
     */
    public int poolSize() {
        return intValue("pool-size", 1, 500);
    }

    /**
     * The settings a drill's servers need for {@code --pool-size}: connections for the pool on each side of the
     * switchover (the old pool and the new one overlap while it drains) and a few for the drill itself.
     *
     * @return {@code postgresql.conf} settings for {@link dev.poolgoaway.testkit.EmbeddedUpstream#start(Map)}
     * @throws IllegalArgumentException if {@code --pool-size} is out of range
     */
    public Map<String, String> serverConfig() {
        return Map.of("max_connections", String.valueOf(poolSize() * 2 + 20));
    }

    /** The exit status for bad input, as command-line tools use it. */
    public static final int USAGE_ERROR = 2;

    /**
     * Runs a program's {@code main}: parses the arguments, prints the usage for {@code --help}, and for bad input
     * prints what is wrong. It never exits the JVM: the program's {@code main} does, with the status returned.
     *
     * @param args    the command line
     * @param program what to run with the parsed options
     * @return 0, or {@link #USAGE_ERROR} for bad input
     * @throws Exception what the program throws
     */
    public int run(String[] args, Program program) throws Exception {
        try {
            if (!parse(args)) {
                System.out.println(usage());
                return 0;
            }
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage());
            return USAGE_ERROR;
        }
        program.run(this);
        return 0;
    }

    /**
     * Declares an option.
     *
     * @param name         its name, without the leading dashes
     * @param defaultValue its value when not given
     * @param description  what it sets, for the usage text
     * @return this
     */
    public DrillOptions option(String name, String defaultValue, String description) {
        declared.put(name, new Option(defaultValue, description));
        return this;
    }

    /**
     * Reads the arguments.
     *
     * @param args {@code --name=value} arguments, or {@code --help}
     * @return true to go on; false if {@code --help} was asked for (print {@link #usage()} then)
     * @throws IllegalArgumentException naming the bad argument, with the usage
     */
    public boolean parse(String... args) {
        for (String arg : args) {
            if (arg.equals("--help") || arg.equals("-h")) {
                help = true;
                continue;
            }
            int eq = arg.indexOf('=');
            String name = arg.startsWith("--") && eq > 2 ? arg.substring(2, eq) : null;
            if (name == null || !declared.containsKey(name)) {
                throw new IllegalArgumentException("unknown argument " + arg + "\n" + usage());
            }
            values.put(name, arg.substring(eq + 1));
        }
        return !help;
    }

    /** @return the usage text: every option with its default and description */
    public String usage() {
        StringBuilder out = new StringBuilder("usage: " + program + " [--name=value ...]\n");
        declared.forEach((name, o) -> out.append(String.format(Locale.ROOT, "  --%-22s %s (default %s)%n",
                name + "=", o.description(), o.defaultValue())));
        return out.toString();
    }

    /** @param name a declared option @return its value as given, or its default */
    public String value(String name) {
        Option o = declared.get(name);
        if (o == null) {
            throw new IllegalArgumentException("undeclared option " + name);
        }
        return values.getOrDefault(name, o.defaultValue());
    }

    /**
     * @param name a declared option
     * @param min  the smallest value allowed
     * @param max  the largest value allowed
     * @return its value as an integer
     * @throws IllegalArgumentException if it is not an integer within the bounds
     */
    public int intValue(String name, int min, int max) {
        String v = value(name);
        try {
            int i = Integer.parseInt(v.trim());
            if (i < min || i > max) {
                throw new IllegalArgumentException("--" + name + " must be between " + min + " and " + max + ", got "
                        + v);
            }
            return i;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + name + " must be an integer, got " + v, e);
        }
    }

    /**
     * @param name a declared option
     * @return its value as a positive duration: {@code 500ms}, {@code 5s}, {@code 2m}, or ISO-8601 ({@code PT5S})
     * @throws IllegalArgumentException if it is not one
     */
    public Duration duration(String name) {
        String v = value(name).trim().toLowerCase(Locale.ROOT);
        Duration d;
        try {
            if (v.startsWith("pt")) {
                d = Duration.parse(v.toUpperCase(Locale.ROOT));
            } else if (v.endsWith("ms")) {
                d = Duration.ofMillis(Long.parseLong(v.substring(0, v.length() - 2)));
            } else if (v.endsWith("s")) {
                d = Duration.ofMillis(Math.round(Double.parseDouble(v.substring(0, v.length() - 1)) * 1000));
            } else if (v.endsWith("m")) {
                d = Duration.ofSeconds(Long.parseLong(v.substring(0, v.length() - 1)) * 60);
            } else {
                throw new IllegalArgumentException("--" + name + " needs a unit (500ms, 5s, 2m), got " + v);
            }
        } catch (NumberFormatException | DateTimeParseException e) {
            throw new IllegalArgumentException("--" + name + " must be a duration such as 500ms, 5s or 2m, got " + v,
                    e);
        }
        if (d.isNegative() || d.isZero()) {
            throw new IllegalArgumentException("--" + name + " must be positive, got " + v);
        }
        return d;
    }

    /**
     * @param name    a declared option
     * @param allowed the values allowed
     * @return its value as a comma-separated list, each one of {@code allowed}
     * @throws IllegalArgumentException if one is not allowed, or the list is empty
     */
    public List<String> list(String name, List<String> allowed) {
        List<String> items = Arrays.stream(value(name).split(",")).map(String::trim).filter(s -> !s.isEmpty())
                .toList();
        if (items.isEmpty()) {
            throw new IllegalArgumentException("--" + name + " must list at least one of " + allowed);
        }
        for (String item : items) {
            if (!allowed.contains(item)) {
                throw new IllegalArgumentException("--" + name + ": unknown " + item + ", allowed " + allowed);
            }
        }
        return items;
    }
}
