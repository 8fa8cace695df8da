// pgJDBC's named server-side statement (prepareThreshold=1: Parse once as S_1, then Bind/Execute
// only) against the sqlml gateway, following a deploy. Run by tests/test_deploy_reach.py as
// `java -cp postgresql.jar DeployFollow.java <jdbc url> <query with one ?>`: for each line read
// from stdin it executes the statement with 10.0 and prints the first column; the test deploys
// between two lines.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;

public class DeployFollow {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        try (Connection con = DriverManager.getConnection(args[0]);
             PreparedStatement ps = con.prepareStatement(args[1])) {
            while (in.readLine() != null) {
                ps.setDouble(1, 10.0);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    System.out.println(rs.getDouble(1));
                    System.out.flush();
                }
            }
        }
    }
}
