// pgJDBC (Debian's libpostgresql-jdbc-java) run against one server: each step prints one JSON
// line {"step", "ok", "value" | "sqlstate", "error"}, the value as text, so that
// clients-jdbc.test.ts can compare a run through pgrouter with a run directly on the primary.
// Run as a single source file: java -cp postgresql.jar JdbcSteps.java HOST PORT USER PASSWORD DBNAME TABLE

import java.io.StringReader;
import java.io.StringWriter;
import java.math.BigDecimal;
import java.security.MessageDigest;
import java.sql.*;
import java.util.*;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.postgresql.copy.CopyManager;

public class JdbcSteps {
  interface Step { Object run() throws Exception; }

  static String json(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (char ch : s.toCharArray()) {
      if (ch == '"' || ch == '\\') b.append('\\').append(ch);
      else if (ch < 0x20) b.append(String.format("\\u%04x", (int) ch));
      else b.append(ch);
    }
    return b.append('"').toString();
  }

  static void step(String name, Step s) {
    String line;
    try {
      Object r = s.run();
      line = "{\"step\":" + json(name) + ",\"ok\":true,\"value\":" + (r == null ? "null" : json(String.valueOf(r))) + "}";
    } catch (Exception e) {
      String state = e instanceof SQLException ? ((SQLException) e).getSQLState() : null;
      line = "{\"step\":" + json(name) + ",\"ok\":false,\"sqlstate\":" + (state == null ? "null" : json(state))
          + ",\"error\":" + json(e.getClass().getSimpleName() + ": " + String.valueOf(e.getMessage()).split("\n")[0]) + "}";
    }
    System.out.println(line);
    System.out.flush();
  }

  static String first(Connection c, String sql) throws SQLException {
    try (Statement s = c.createStatement(); ResultSet r = s.executeQuery(sql)) {
      r.next();
      return r.getString(1);
    }
  }

  public static void main(String[] a) throws Exception {
    String url = "jdbc:postgresql://" + a[0] + ":" + a[1] + "/" + a[4] + "?connectTimeout=10";
    Properties props = new Properties();
    props.setProperty("user", a[2]);
    props.setProperty("password", a[3]);
    String table = a[5];
    try (Connection t = DriverManager.getConnection(url, props)) {
      // Autocommit off, as under Spring's @Transactional: pgJDBC sends BEGIN in front of the read.
      t.setAutoCommit(false);
      step("reads in a transaction before any write: a standby?", () -> {
        String r = first(t, "select current_setting('transaction_read_only')");
        t.commit();
        return r;
      });
    }
    try (Connection t = DriverManager.getConnection(url, props)) {
      // Spring's @Transactional(readOnly = true): pgJDBC opens the transaction with BEGIN READ ONLY,
      // where transaction_read_only is on everywhere; in_hot_standby tells the nodes apart.
      t.setAutoCommit(false);
      t.setReadOnly(true);
      step("a READ ONLY transaction: a standby?", () -> {
        String r = first(t, "select current_setting('in_hot_standby')");
        t.commit();
        return r;
      });
    }
    try (Connection c = DriverManager.getConnection(url, props)) {
      // transaction_read_only is on on a standby; pg_is_in_recovery() is volatile, so pgrouter (as
      // Pgpool-II) would send it to the primary.
      step("reads before any write: a standby?", () -> first(c, "select current_setting('transaction_read_only')"));
      step("server version as the driver sees it", () -> c.getMetaData().getDatabaseMajorVersion());
      // pgJDBC names the statement on the server from its 5th execution (prepareThreshold).
      step("prepared statement run 10 times", () -> {
        List<Integer> out = new ArrayList<>();
        try (PreparedStatement p = c.prepareStatement("select ?::int * 2")) {
          for (int i = 0; i < 10; i++) {
            p.setInt(1, i);
            try (ResultSet r = p.executeQuery()) { r.next(); out.add(r.getInt(1)); }
          }
        }
        return out;
      });
      step("types", () -> {
        try (PreparedStatement p = c.prepareStatement("select ?::numeric, ?::timestamptz, ?::uuid, ?::bytea, ?::text[], ?::float8")) {
          p.setBigDecimal(1, new BigDecimal("1.25"));
          p.setTimestamp(2, new Timestamp(86_400_000L));
          p.setObject(3, UUID.fromString("00000000-0000-0000-0000-000000000007"));
          p.setBytes(4, new byte[] {0, 1, -1});
          p.setArray(5, c.createArrayOf("text", new String[] {"a", "b c"}));
          p.setDouble(6, 2.5);
          try (ResultSet r = p.executeQuery()) {
            r.next();
            return r.getBigDecimal(1) + " " + r.getTimestamp(2).getTime() + " " + r.getObject(3) + " "
                + Arrays.toString(r.getBytes(4)) + " " + Arrays.toString((String[]) r.getArray(5).getArray()) + " " + r.getDouble(6);
          }
        }
      });
      step("DDL in one statement string", () -> {
        try (Statement s = c.createStatement()) {
          s.execute("drop table if exists " + table + "; create table " + table + "(id int primary key, v text)");
          return null;
        }
      });
      step("reads after a write: a standby?", () -> first(c, "select current_setting('transaction_read_only')"));
      step("batch insert of 500 rows", () -> {
        try (PreparedStatement p = c.prepareStatement("insert into " + table + " values (?, ?)")) {
          for (int i = 0; i < 500; i++) { p.setInt(1, i); p.setString(2, "v" + i); p.addBatch(); }
          return Arrays.stream(p.executeBatch()).sum();
        }
      });
      step("COPY FROM STDIN, 2000 rows", () -> {
        CopyManager cm = c.unwrap(PGConnection.class).getCopyAPI();
        StringBuilder sb = new StringBuilder();
        for (int i = 1000; i < 3000; i++) sb.append(i).append('\t').append('c').append(i).append('\n');
        return cm.copyIn("copy " + table + " from stdin", new StringReader(sb.toString()));
      });
      step("COPY TO STDOUT", () -> {
        CopyManager cm = c.unwrap(PGConnection.class).getCopyAPI();
        StringWriter w = new StringWriter();
        long rows = cm.copyOut("copy (select * from " + table + " order by id) to stdout", w);
        byte[] d = MessageDigest.getInstance("SHA-256").digest(w.toString().getBytes("UTF-8"));
        return rows + " " + HexFormat.of().formatHex(d);
      });
      step("an error", () -> first(c, "select * from no_such_table_here"));
      step("after the error", () -> first(c, "select 'ok'"));
      step("cancel a running query", () -> {
        try (Statement s = c.createStatement()) {
          Thread t = new Thread(() -> { try { Thread.sleep(500); s.cancel(); } catch (Exception e) { } });
          t.start();
          try { s.execute("select pg_sleep(10)"); return "not canceled"; }
          finally { t.join(); }
        }
      });
      step("a query timeout", () -> {
        try (Statement s = c.createStatement()) {
          s.setQueryTimeout(1);
          s.execute("select pg_sleep(10)");
          return "no timeout";
        }
      });
      step("after the cancels", () -> first(c, "select 'ok'"));
      step("DatabaseMetaData.getTables", () -> {
        try (ResultSet r = c.getMetaData().getTables(null, "public", table, null)) { return r.next() ? r.getString("TABLE_NAME") : "none"; }
      });
      step("fetch size 100 in a transaction (a portal read in parts)", () -> {
        c.setAutoCommit(false);
        try (PreparedStatement p = c.prepareStatement("select id from " + table + " order by id")) {
          p.setFetchSize(100);
          long n = 0;
          try (ResultSet r = p.executeQuery()) { while (r.next()) n += r.getInt(1); }
          c.commit();
          return n;
        } finally { c.setAutoCommit(true); }
      });
      step("transaction with a savepoint rolled back to", () -> {
        c.setAutoCommit(false);
        try (Statement s = c.createStatement()) {
          s.executeUpdate("insert into " + table + " values (9001, 'a')");
          Savepoint sp = c.setSavepoint();
          try { s.executeUpdate("insert into " + table + " values (9001, 'dup')"); } catch (SQLException e) { c.rollback(sp); }
          s.executeUpdate("insert into " + table + " values (9002, 'b')");
          c.commit();
        } finally { c.setAutoCommit(true); }
        return first(c, "select count(*) from " + table + " where id > 9000");
      });
      step("read-only transaction", () -> {
        c.setAutoCommit(false);
        c.setReadOnly(true);
        try { String r = first(c, "show transaction_read_only"); c.commit(); return r; }
        finally { c.setReadOnly(false); c.setAutoCommit(true); }
      });
      step("serializable transaction", () -> {
        c.setTransactionIsolation(Connection.TRANSACTION_SERIALIZABLE);
        c.setAutoCommit(false);
        try { String r = first(c, "show transaction_isolation"); c.commit(); return r; }
        finally { c.setAutoCommit(true); c.setTransactionIsolation(Connection.TRANSACTION_READ_COMMITTED); }
      });
      step("two results from one statement string", () -> {
        try (Statement s = c.createStatement()) {
          s.execute("select 1; select 2, 3");
          int n = 1;
          while (s.getMoreResults()) n++;
          return n;
        }
      });
      step("a large result", () -> {
        try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("select repeat('x', 1000) from generate_series(1, 20000)")) {
          long n = 0;
          while (r.next()) n += r.getString(1).length();
          return n;
        }
      });
      step("LISTEN/NOTIFY", () -> {
        try (Connection l = DriverManager.getConnection(url, props); Statement ls = l.createStatement(); Statement s = c.createStatement()) {
          ls.execute("listen steps_channel");
          s.execute("notify steps_channel, 'hello'");
          PGNotification[] ns = l.unwrap(PGConnection.class).getNotifications(5000);
          return ns == null || ns.length == 0 ? "none" : ns.length + " " + ns[0].getName() + " " + ns[0].getParameter();
        }
      });
      step("drop the table", () -> { try (Statement s = c.createStatement()) { s.execute("drop table " + table); return null; } });
    }
  }
}
