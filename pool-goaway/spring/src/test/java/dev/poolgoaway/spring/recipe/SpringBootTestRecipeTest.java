package dev.poolgoaway.spring.recipe;

// tag::imports[]
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.SpringBootConfiguration;
import org.springframework.boot.autoconfigure.EnableAutoConfiguration;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.jdbc.core.JdbcTemplate;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.testkit.ShutdownCompletion;
// end::imports[]

/**
 * The test kit's Spring Boot recipe (docs/testkit.md), style 2: {@code @SpringBootTest}, with the servers and the
 * proxy started in {@code @BeforeAll}, before Spring builds the context, and handed to it by
 * {@code @DynamicPropertySource}.
 */
// tag::example[]
@SpringBootTest
@DirtiesContext   // the proxy closes after the class: no later test may reuse this context
class SpringBootTestRecipeTest {

    /** Stands for your application (a @SpringBootApplication is found the same way). */
    @SpringBootConfiguration
    @EnableAutoConfiguration
    static class Application {
    }

    static EmbeddedUpstream blue;
    static EmbeddedUpstream green;
    static GoAwayProxy proxy;

    @BeforeAll
    static void servers() throws Exception {
        blue = EmbeddedUpstream.start();
        green = EmbeddedUpstream.start();
        proxy = GoAwayProxy.builder().upstream(blue).start();
    }

    @DynamicPropertySource
    static void dataSource(DynamicPropertyRegistry registry) {
        registry.add("spring.datasource.url", () -> proxy.jdbcUrl(blue.database()));
        registry.add("spring.datasource.username", blue::user);
        registry.add("spring.datasource.password", blue::password);
    }

    @AfterAll
    static void stop() throws Exception {
        proxy.close();
        green.close();
        blue.close();
    }

    @Autowired
    JdbcTemplate jdbc;

    @Test
    void thePoolMovesToGreenWhenBlueSaysGoAway() throws Exception {
        assertEquals(blue.port(), jdbc.queryForObject("select inet_server_port()", Integer.class));

        proxy.retarget(green);
        ShutdownCompletion done = proxy.awaitSmartShutdown(blue, Duration.ofSeconds(30));

        assertTrue(done.connectionsAtRequest() > 0, "the pool was on blue");
        assertEquals(green.port(), jdbc.queryForObject("select inet_server_port()", Integer.class));
    }
}
// end::example[]
