//go:build !unix

package database

import (
	"context"
	"database/sql"
)

// fileLocker does not lock where flock does not exist: concurrent migrations of one SQLite file
// from several processes are not serialised there.
type fileLocker struct{ path string }

func (l *fileLocker) SessionLock(context.Context, *sql.Conn) error   { return nil }
func (l *fileLocker) SessionUnlock(context.Context, *sql.Conn) error { return nil }
