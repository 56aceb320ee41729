package dev.poolgoaway.samples.orders;

import org.springframework.boot.autoconfigure.SpringBootApplication;

/**
 * The drill's application: an ordinary Spring Boot service on PostgreSQL through HikariCP. Nothing in it mentions
 * pool-goaway: the dependency on {@code pool-goaway-spring-boot} is all it takes (see {@code docs/spring-boot.md}).
 */
@SpringBootApplication
public class OrdersApplication {
}
