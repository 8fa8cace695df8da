// pgJDBC against the sqlml gateway, as DBeaver and DataGrip use it: a scenario, then the
// DatabaseMetaData calls their database browsers make. Run by tests/test_gateway_clients.py as
// `java -cp postgresql.jar GatewayMetadata.java <jdbc url>`; prints one line per fact, which the
// test compares with what PostgreSQL would answer.
import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Types;

public class GatewayMetadata {
    public static void main(String[] args) throws Exception {
        try (Connection con = DriverManager.getConnection(args[0])) {
            scenario(con);
            metadata(con.getMetaData());
        }
    }

    static void scenario(Connection con) throws SQLException {
        try (Statement st = con.createStatement()) {
            st.execute("CREATE TABLE jdbc_notes (id integer PRIMARY KEY, body text, score numeric(6,2))");
        }
        try (PreparedStatement ps = con.prepareStatement("INSERT INTO jdbc_notes VALUES (?, ?, ?)")) {
            ps.setInt(1, 1); ps.setString(2, "a"); ps.setBigDecimal(3, new BigDecimal("1.25"));
            System.out.println("insert " + ps.executeUpdate());
            ps.setInt(1, 2); ps.setNull(2, Types.VARCHAR); ps.setNull(3, Types.NUMERIC);
            System.out.println("insert " + ps.executeUpdate());
        }
        try (PreparedStatement ps = con.prepareStatement("SELECT * FROM jdbc_notes WHERE id >= ? ORDER BY id")) {
            ps.setInt(1, 1);
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    System.out.println("row " + rs.getInt(1) + "|" + rs.getString(2) + "|" + rs.getBigDecimal(3));
                }
            }
        }
        con.setAutoCommit(false);
        try (Statement st = con.createStatement()) {
            st.executeQuery("SELECT * FROM jdbc_missing");
        } catch (SQLException e) {
            System.out.println("error " + e.getSQLState());
            con.rollback();
        }
        con.setAutoCommit(true);
        try (Statement st = con.createStatement(); ResultSet rs = st.executeQuery("SELECT count(*) FROM jdbc_notes")) {
            rs.next();
            System.out.println("count " + rs.getLong(1));
        }
    }

    static void metadata(DatabaseMetaData md) throws SQLException {
        System.out.println("product " + md.getDatabaseProductName() + " " + md.getDatabaseMajorVersion());
        print("table", md.getTables(null, "public", "%", new String[] {"TABLE", "VIEW"}),
              "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE");
        print("column", md.getColumns(null, "public", "items", "%"),
              "COLUMN_NAME", "TYPE_NAME", "DATA_TYPE", "IS_NULLABLE", "ORDINAL_POSITION");
        print("key", md.getPrimaryKeys(null, "public", "items"), "COLUMN_NAME", "KEY_SEQ", "PK_NAME");
        print("index", md.getIndexInfo(null, "public", "items", false, false),
              "INDEX_NAME", "NON_UNIQUE", "COLUMN_NAME");
        print("imported", md.getImportedKeys(null, "public", "orders"),
              "PKTABLE_NAME", "PKCOLUMN_NAME", "FKTABLE_NAME", "FKCOLUMN_NAME");
        print("schema", md.getSchemas(), "TABLE_SCHEM");
    }

    static void print(String kind, ResultSet rs, String... columns) throws SQLException {
        try (rs) {
            while (rs.next()) {
                StringBuilder line = new StringBuilder(kind);
                String sep = " ";
                for (String column : columns) {
                    line.append(sep).append(rs.getString(column));
                    sep = "|";
                }
                System.out.println(line);
            }
        }
    }
}
