package database

import (
	"reflect"
	"strings"
	"testing"
)

func TestDialect_Rebind(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, pg, lite, my string
	}{
		{"SELECT 1", "SELECT 1", "SELECT 1", "SELECT 1"},
		{"SELECT * FROM t WHERE a = $1 AND b = $2", "SELECT * FROM t WHERE a = $1 AND b = $2",
			"SELECT * FROM t WHERE a = ?1 AND b = ?2", "SELECT * FROM t WHERE a = ? AND b = ?"},
		{"SELECT '$1', \"$2\", $1 -- $3\n, $2 /* $4 */", "SELECT '$1', \"$2\", $1 -- $3\n, $2 /* $4 */",
			"SELECT '$1', \"$2\", ?1 -- $3\n, ?2 /* $4 */", "SELECT '$1', \"$2\", ? -- $3\n, ? /* $4 */"},
		{"SELECT 'it''s $1', $1", "SELECT 'it''s $1', $1", "SELECT 'it''s $1', ?1", "SELECT 'it''s $1', ?"},
		{"SELECT a$1, $10", "SELECT a$1, $10", "SELECT a$1, ?10", "SELECT a$1, ?"},
		{"SELECT $0, $", "SELECT $0, $", "SELECT $0, $", "SELECT $0, $"},
		{"SELECT `$1`, $1", "SELECT `$1`, $1", "SELECT `$1`, ?1", "SELECT `$1`, ?"},
	}
	for _, c := range cases {
		if got := Postgres.Rebind(c.in); got != c.pg {
			t.Errorf("Postgres.Rebind(%q) = %q", c.in, got)
		}
		if got := SQLite.Rebind(c.in); got != c.lite {
			t.Errorf("SQLite.Rebind(%q) = %q, want %q", c.in, got, c.lite)
		}
		if got := MySQL.Rebind(c.in); got != c.my {
			t.Errorf("MySQL.Rebind(%q) = %q, want %q", c.in, got, c.my)
		}
	}
	// MySQL strings take backslash escapes: \' does not end the literal.
	if got := MySQL.Rebind(`SELECT 'a\'$1', $1`); got != `SELECT 'a\'$1', ?` {
		t.Errorf("backslash escape: %q", got)
	}
}

func TestDialect_RebindArgs(t *testing.T) {
	t.Parallel()
	q, args := MySQL.RebindArgs("SELECT $2, $1, $2", []any{"a", "b"})
	if q != "SELECT ?, ?, ?" || !reflect.DeepEqual(args, []any{"b", "a", "b"}) {
		t.Errorf("MySQL: %q %v", q, args)
	}
	in := []any{1, 2}
	q, args = MySQL.RebindArgs("SELECT $1, $2", in)
	if q != "SELECT ?, ?" || &args[0] != &in[0] {
		t.Errorf("in-order args should be passed through: %q %v", q, args)
	}
	q, args = SQLite.RebindArgs("SELECT $2, $1", in)
	if q != "SELECT ?2, ?1" || !reflect.DeepEqual(args, in) {
		t.Errorf("SQLite: %q %v", q, args)
	}
	q, args = MySQL.RebindArgs("SELECT $3", in) // missing argument: left for the driver to report
	if q != "SELECT ?" || len(args) != 0 {
		t.Errorf("missing arg: %q %v", q, args)
	}
	if MySQL.Placeholder(3) != "?" || Postgres.Placeholder(3) != "$3" || SQLite.Placeholder(3) != "$3" {
		t.Error("Placeholder")
	}
}

// FuzzRebind checks that Rebind never panics, leaves text without placeholders alone, and for
// MySQL yields as many ? outside literals as RebindArgs yields arguments.
func FuzzRebind(f *testing.F) {
	for _, s := range []string{"SELECT $1", "'$1' $2", "-- $1\n$1", "/* $1", "`$1`", "$$1$", "\"a\\\"$1\" $2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		for _, d := range []Dialect{Postgres, MySQL, SQLite} {
			out := d.Rebind(q)
			if !strings.Contains(q, "$") && out != q {
				t.Fatalf("%s changed %q to %q", d, q, out)
			}
			args := make([]any, 20)
			for i := range args {
				args[i] = i + 1
			}
			q2, a2 := d.RebindArgs(q, args)
			if q2 != out {
				t.Fatalf("%s: Rebind %q, RebindArgs %q", d, out, q2)
			}
			if d != MySQL && len(a2) != len(args) {
				t.Fatalf("%s changed the arguments", d)
			}
		}
	})
}
