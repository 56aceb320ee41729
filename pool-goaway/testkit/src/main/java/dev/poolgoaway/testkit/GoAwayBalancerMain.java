package dev.poolgoaway.testkit;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.net.BindException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CountDownLatch;

/**
 * Runs a {@link GoAwayProxy} as a load balancer on a fixed loopback port in front of PostgreSQL servers the user
 * runs, to try a GoAway switchover on one host: what a real GoAway server sends passes through, new connections go
 * to the first upstream until {@code next} moves them on.
 *
 * <pre>
 * java -cp ... dev.poolgoaway.testkit.GoAwayBalancerMain --listen=127.0.0.1:6432 --upstream=127.0.0.1:5432,127.0.0.1:5433
 * </pre>
 *
 * <p>Commands on standard input, one a line: {@code next} (new connections go to the next upstream, open ones
 * stay), {@code goaway} (the proxy's own smart shutdown of the current upstream, for servers without the GoAway
 * patch), {@code status}, {@code quit}. Without a terminal (standard input at its end) it runs until killed.
 */
public final class GoAwayBalancerMain {

    /** Exit status for bad arguments. */
    static final int USAGE = 2;
    /** Exit status when it cannot listen. */
    static final int FAILED = 1;

    static final String HELP = """
            Usage: GoAwayBalancerMain --upstream=host:port[,host:port...] [--listen=[address:]port] [--dialect=NAME]

            A GoAway-speaking PostgreSQL balancer on one host: clients connect to the listen address, new
            connections go to the first upstream; what the upstream sends (a real GoAway included) reaches them.

              --upstream=LIST   PostgreSQL servers you run, in switchover order (required)
              --listen=ADDR     loopback address and port to listen on (default 127.0.0.1:6432; ::1 as [::1]:6432)
              --dialect=NAME    protocol-3.3 (default), extension or none: which GoAway design the proxy plays;
                                keep the default in front of a real GoAway server (it passes _pq_.goaway on)
              --help            this text

            Commands on standard input: next (new connections to the next upstream), goaway (the proxy's own
            smart shutdown of the current upstream: GoAway to its clients, new connections to it refused),
            status, quit.
            """;

    private GoAwayBalancerMain() {
    }

    /**
     * @param args see {@link #HELP}
     */
    public static void main(String[] args) {
        int status = run(args, System.in, System.out, System.err, true);
        if (status != 0) {
            System.exit(status);
        }
    }

    /** The parsed command line. */
    record Options(InetSocketAddress listen, List<InetSocketAddress> upstreams, GoAwayProxy.Dialect dialect) {
    }

    /**
     * Parses, starts, prints {@code listening on host:port} once the proxy accepts connections, then reads commands
     * until {@code quit}; at the end of input it waits for interruption if {@code waitAtEof}, returns otherwise.
     *
     * @return the exit status: 0, {@link #USAGE} or {@link #FAILED}
     */
    static int run(String[] args, InputStream in, PrintStream out, PrintStream err, boolean waitAtEof) {
        Options options;
        try {
            options = parse(args);
        } catch (IllegalArgumentException e) {
            err.println("error: " + e.getMessage());
            err.println("run with --help for usage");
            return USAGE;
        }
        if (options == null) {
            out.print(HELP);
            return 0;
        }
        InetSocketAddress first = options.upstreams().get(0);
        GoAwayProxy proxy;
        try {
            proxy = GoAwayProxy.builder()
                    .listen(options.listen().getAddress())
                    .port(options.listen().getPort())
                    .upstream(first.getHostString(), first.getPort())
                    .dialect(options.dialect())
                    .name("goaway-balancer")
                    .start();
        } catch (BindException e) {
            err.println("error: cannot listen on " + text(options.listen()) + ": " + e.getMessage());
            return FAILED;
        } catch (IOException e) {
            err.println("error: cannot listen on " + text(options.listen()) + ": " + e);
            return FAILED;
        }
        try (proxy) {
            int current = 0;
            String address = options.listen().getAddress().getHostAddress();
            out.println("listening on " + (address.contains(":") ? "[" + address + "]" : address) + ":"
                    + proxy.port() + ", new connections to "
                    + text(first) + " (GoAway dialect " + options.dialect() + ")");
            out.flush();
            BufferedReader commands = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
            String line;
            while ((line = commands.readLine()) != null) {
                InetSocketAddress now = options.upstreams().get(current);
                switch (line.trim()) {
                    case "" -> { }
                    case "next" -> {
                        current = (current + 1) % options.upstreams().size();
                        InetSocketAddress to = options.upstreams().get(current);
                        proxy.retarget(to.getHostString(), to.getPort());
                        out.println("new connections to " + text(to) + ", " + proxy.openConnections().size()
                                + " open connection(s) stay where they are");
                    }
                    case "goaway" -> {
                        proxy.smartShutdown(now.getHostString(), now.getPort());
                        out.println("smart shutdown of " + text(now) + ": GoAway sent to its clients, new connections"
                                + " to it refused until next");
                    }
                    case "status" -> out.println("new connections to " + text(now) + ", "
                            + proxy.openConnections().size() + " open connection(s)"
                            + (proxy.shuttingDown() ? ", shutting down" : ""));
                    case "quit" -> {
                        out.println("closing");
                        return 0;
                    }
                    default -> out.println("unknown command '" + line.trim() + "': next, goaway, status or quit");
                }
                out.flush();
            }
            if (waitAtEof) {
                new CountDownLatch(1).await();
            }
            return 0;
        } catch (IOException e) {
            err.println("error: reading commands: " + e);
            return FAILED;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 0;
        }
    }

    /** @return the options, or null for {@code --help} */
    static Options parse(String[] args) {
        InetSocketAddress listen = null;
        List<InetSocketAddress> upstreams = null;
        GoAwayProxy.Dialect dialect = GoAwayProxy.Dialect.PROTOCOL_3_3;
        for (String arg : args) {
            if (arg.equals("--help") || arg.equals("-h")) {
                return null;
            }
            int eq = arg.indexOf('=');
            String name = eq < 0 ? arg : arg.substring(0, eq);
            String value = eq < 0 ? null : arg.substring(eq + 1);
            if (!List.of("--listen", "--upstream", "--dialect").contains(name)) {
                throw new IllegalArgumentException("unknown option " + arg);
            }
            if (value == null || value.isBlank()) {
                throw new IllegalArgumentException(name + " needs a value: " + name + "=...");
            }
            switch (name) {
                case "--listen" -> listen = listenAddress(value);
                case "--upstream" -> {
                    upstreams = new ArrayList<>();
                    for (String one : value.split(",", -1)) {
                        upstreams.add(hostPort("--upstream", one.trim()));
                    }
                }
                default -> dialect = dialect(value);
            }
        }
        if (upstreams == null) {
            throw new IllegalArgumentException("--upstream=host:port[,host:port...] is required: the PostgreSQL"
                    + " servers to forward to");
        }
        if (listen == null) {
            listen = listenAddress("127.0.0.1:6432");
        }
        return new Options(listen, List.copyOf(upstreams), dialect);
    }

    private static InetSocketAddress listenAddress(String value) {
        InetSocketAddress parsed = value.matches("\\d+") ? hostPort("--listen", "127.0.0.1:" + value)
                : hostPort("--listen", value);
        InetAddress address;
        try {
            address = InetAddress.getByName(parsed.getHostString());
        } catch (UnknownHostException e) {
            throw new IllegalArgumentException("--listen: unknown host " + parsed.getHostString());
        }
        if (!address.isLoopbackAddress()) {
            throw new IllegalArgumentException("--listen: " + parsed.getHostString() + " is not a loopback address:"
                    + " the balancer is for trying a switchover on one host (127.0.0.0/8, ::1)");
        }
        return new InetSocketAddress(address, parsed.getPort());
    }

    private static InetSocketAddress hostPort(String option, String value) {
        String host;
        String port;
        if (value.startsWith("[")) {
            int close = value.indexOf(']');
            if (close < 0 || close + 1 >= value.length() || value.charAt(close + 1) != ':') {
                throw new IllegalArgumentException(option + ": '" + value + "' is not [ipv6]:port");
            }
            host = value.substring(1, close);
            port = value.substring(close + 2);
        } else {
            int colon = value.lastIndexOf(':');
            if (colon <= 0 || value.indexOf(':') != colon) {
                throw new IllegalArgumentException(option + ": '" + value + "' is not host:port");
            }
            host = value.substring(0, colon);
            port = value.substring(colon + 1);
        }
        int number;
        try {
            number = Integer.parseInt(port);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(option + ": '" + port + "' in '" + value + "' is not a port number");
        }
        if (number < 1 || number > 65535) {
            throw new IllegalArgumentException(option + ": port " + number + " in '" + value + "' is not 1-65535");
        }
        return InetSocketAddress.createUnresolved(host, number);
    }

    private static GoAwayProxy.Dialect dialect(String value) {
        return switch (value.toLowerCase(Locale.ROOT)) {
            case "protocol-3.3", "protocol_3_3" -> GoAwayProxy.Dialect.PROTOCOL_3_3;
            case "extension" -> GoAwayProxy.Dialect.EXTENSION;
            case "none" -> GoAwayProxy.Dialect.NONE;
            default -> throw new IllegalArgumentException("--dialect: '" + value
                    + "' is not protocol-3.3, extension or none");
        };
    }

    private static String text(InetSocketAddress address) {
        String host = address.getHostString();
        return (host.contains(":") ? "[" + host + "]" : host) + ":" + address.getPort();
    }
}
