package dev.poolgoaway.spring.recipe;

// tag::imports[]
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.springframework.boot.SpringBootConfiguration;
import org.springframework.boot.WebApplicationType;
import org.springframework.boot.autoconfigure.EnableAutoConfiguration;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.jdbc.core.JdbcTemplate;

import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.testkit.GoAwayProxyTest;
import dev.poolgoaway.testkit.PostgresUpstream;
import dev.poolgoaway.testkit.ShutdownCompletion;
// end::imports[]

/**
 * The test kit's Spring Boot recipe (docs/testkit.md), style 1: {@code @GoAwayProxyTest} hands the method a proxy,
 * the method starts the application on it. Runs on Boot 4.1 with JUnit 6 and on Boot 3.5 with its JUnit 5.12.
 */
// tag::example[]
@GoAwayProxyTest
class SpringApplicationRecipeTest {

    /** Stands for your application: pool-goaway-spring-boot on the class path, no code of its own. */
    @SpringBootConfiguration
    @EnableAutoConfiguration
    static class Application {
    }

    @Test
    void thePoolMovesToGreenWhenBlueSaysGoAway(GoAwayProxy proxy, PostgresUpstream blue) throws Exception {
        try (EmbeddedUpstream green = EmbeddedUpstream.start();
                ConfigurableApplicationContext app = new SpringApplicationBuilder(Application.class)
                        .web(WebApplicationType.NONE)
                        .run("--spring.datasource.url=" + proxy.jdbcUrl(blue.database()),
                                "--spring.datasource.username=" + blue.user(),
                                "--spring.datasource.password=" + blue.password())) {
            JdbcTemplate jdbc = app.getBean(JdbcTemplate.class);
            assertEquals(blue.port(), jdbc.queryForObject("select inet_server_port()", Integer.class));

            proxy.retarget(green);                          // the load balancer's switch
            ShutdownCompletion done = proxy.smartShutdown(blue)
                    .get(30, TimeUnit.SECONDS);             // completes when the pool's last connection left blue

            assertTrue(done.connectionsAtRequest() > 0, "the pool was on blue");
            assertEquals(green.port(), jdbc.queryForObject("select inet_server_port()", Integer.class));
        }
    }
}
// end::example[]
