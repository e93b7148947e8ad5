package cli

import (
	"fmt"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database"
)

// embeddedDatabase is the environment shoal up adds to every instance for the database: with
// no database configured (no database.url, no DATABASE_URL), DATABASE_URL pointing at one
// SQLite file in the state directory, shared by all instances — so a service with a database
// runs with nothing installed. A configured database is left to the instance's own
// configuration; shoal generate turns ${DATABASE_URL} into a Secret reference either way.
func (a *app) embeddedDatabase(c *config.Config) []string {
	if c.Database.URL != "" {
		return nil
	}
	url := embeddedDatabaseURL(c)
	fmt.Fprintf(a.stderr, "shoal: no database configured; every instance gets DATABASE_URL=%s (SQLite in the state directory)\n", database.Redact(url))
	return []string{"DATABASE_URL=" + url}
}
