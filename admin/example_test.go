package admin_test

import (
	"fmt"
	"time"

	"github.com/shoal-sh/shoal/admin"
)

// A token is issued with scopes and a lifetime, and verified against the same key.
func ExampleIssueToken() {
	key := admin.GenerateKey() // or admin.LoadKey(stateDir, nil)
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	scopes, _ := admin.ParseScopes("scaling:read,scaling:write")
	token, _, err := admin.IssueToken(key, admin.TokenOptions{Scopes: scopes, TTL: 7 * 24 * time.Hour,
		Now: func() time.Time { return now }})
	if err != nil {
		panic(err)
	}
	claims, err := admin.VerifyToken(key, token, now.Add(time.Hour))
	fmt.Println(claims.Subject, claims.Scope, claims.ExpiresAt.UTC(), err)
	_, err = admin.VerifyToken(key, token, now.Add(8*24*time.Hour))
	fmt.Println(err)
	// Output:
	// shoal-admin [scaling:read scaling:write] 2025-06-08 12:00:00 +0000 UTC <nil>
	// the admin token has expired (at 2025-06-08T12:00:00Z); create a new one with `shoal scaling generate-token`
}
