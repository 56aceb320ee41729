package dev.poolgoaway.samples.orders;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.concurrent.ThreadLocalRandom;

import dev.poolgoaway.testkit.LoadGenerator;

/** The application's request under load: a short transaction that places an order and reads it back. */
public final class PlaceOrder implements LoadGenerator.Request {

    /** The table the orders go to, on every server. */
    public static final String SCHEMA = "create table if not exists orders (id bigserial primary key, "
            + "amount int not null, placed_at timestamptz not null default now())";

    @Override
    public void execute(Connection connection) throws SQLException {
        connection.setAutoCommit(false);
        try (PreparedStatement insert = connection.prepareStatement(
                "insert into orders (amount) values (?) returning id")) {
            insert.setInt(1, ThreadLocalRandom.current().nextInt(1, 1000));
            try (ResultSet rs = insert.executeQuery()) {
                rs.next();
            }
            // A little server time, as a real request would spend: 2 ms.
            try (Statement s = connection.createStatement(); ResultSet rs = s.executeQuery("select pg_sleep(0.002)")) {
                rs.next();
            }
            connection.commit();
        } catch (SQLException | RuntimeException e) {
            try {
                connection.rollback();
            } catch (SQLException rollback) {
                e.addSuppressed(rollback);   // the connection is gone; the original failure is what matters
            }
            throw e;
        }
    }
}
