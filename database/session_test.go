package database

import "testing"

func TestIsWrite(t *testing.T) {
	t.Parallel()
	reads := []string{
		"SELECT 1", "  select * from t", "(SELECT 1) UNION (SELECT 2)", "-- c\nSELECT 1", "/* x */ SELECT 1",
		"WITH a AS (SELECT 1) SELECT * FROM a", "SHOW TABLES", "EXPLAIN SELECT 1", "VALUES (1)",
		"SELECT updated_at FROM t", "SELECT * FROM t WHERE kind = 'information'",
	}
	writes := []string{
		"INSERT INTO t VALUES (1)", "UPDATE t SET a = 1", "DELETE FROM t", "insert into t select 1",
		"SELECT * FROM t FOR UPDATE", "select * from t for  share skip locked", "SELECT nextval('s')",
		"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "CREATE TABLE t (a INT)", "", "   ",
		"PRAGMA foreign_keys = 0", "CALL proc()",
	}
	for _, q := range reads {
		if isWrite(q) {
			t.Errorf("isWrite(%q) = true, want a read", q)
		}
	}
	for _, q := range writes {
		if !isWrite(q) {
			t.Errorf("isWrite(%q) = false, want a write", q)
		}
	}
}

func FuzzIsWrite(f *testing.F) {
	for _, s := range []string{"SELECT 1", "WITH x AS (INSERT", "/*", "--", "select\u00e9 for update"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		w := isWrite(q)
		if kw := firstWord(q); kw != "select" && kw != "with" && kw != "show" && kw != "explain" &&
			kw != "values" && kw != "table" && kw != "describe" && kw != "desc" && !w {
			t.Fatalf("%q starts with %q but is taken for a read", q, kw)
		}
	})
}

// firstWord is the fuzz test's own, plainer reading of the first keyword.
func firstWord(q string) string {
	var first string
	words(q, func(w string) bool { first = w; return false })
	return lower(first)
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}
