// A JDBC application's load for bench/jdbc-sessions.ts: N pgJDBC connections, a thread each,
// running pgbench's select-only statement as a PreparedStatement (server-prepared from its 5th
// run) for S seconds. Prints MID halfway through (the caller counts backend connections then)
// and, at the end, one line: `queries Q errors E` (E: threads stopped by an error).
//   java -cp /usr/share/java/postgresql.jar JdbcLoad.java PORT USER PASSWORD DATABASE N S

import java.sql.*;
import java.util.*;
import java.util.concurrent.atomic.AtomicLong;

public class JdbcLoad {
  public static void main(String[] a) throws Exception {
    String url = "jdbc:postgresql://127.0.0.1:" + a[0] + "/" + a[3];
    Properties props = new Properties();
    props.setProperty("user", a[1]);
    props.setProperty("password", a[2]);
    int n = Integer.parseInt(a[4]);
    int secs = Integer.parseInt(a[5]);
    List<Connection> cs = new ArrayList<>();
    for (int i = 0; i < n; i++) cs.add(DriverManager.getConnection(url, props));
    AtomicLong done = new AtomicLong();
    AtomicLong errors = new AtomicLong();
    long end = System.nanoTime() + secs * 1_000_000_000L;
    List<Thread> threads = new ArrayList<>();
    for (Connection c : cs) {
      Thread t = new Thread(() -> {
        Random r = new Random();
        try (PreparedStatement p = c.prepareStatement("select abalance from pgbench_accounts where aid = ?")) {
          while (System.nanoTime() < end) {
            p.setInt(1, 1 + r.nextInt(1_000_000));
            try (ResultSet rs = p.executeQuery()) { rs.next(); }
            done.incrementAndGet();
          }
        } catch (SQLException e) {
          // The thread stops at its first error; the first one of the run is shown.
          if (errors.getAndIncrement() == 0) System.err.println("JdbcLoad: first error: " + e.getSQLState() + " " + e.getMessage());
        }
      });
      threads.add(t);
      t.start();
    }
    Thread.sleep(secs * 500L);
    System.out.println("MID");
    System.out.flush();
    for (Thread t : threads) t.join();
    System.out.println("queries " + done.get() + " errors " + errors.get());
    for (Connection c : cs) c.close();
  }
}
