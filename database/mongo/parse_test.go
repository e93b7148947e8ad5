package mongo

import (
	"strings"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/config"
)

// The pool settings land in the driver's options; parameters of the URL win.
func TestParse_PoolSettings(t *testing.T) {
	cfg := config.Database{URL: "mongodb://u:sekrit@h:27017/app", MaxConnections: 7, MinConnections: 2,
		ConnectTimeout: config.Duration(3 * time.Second), IdleTimeout: config.Duration(time.Minute)}
	p, err := parse(cfg)
	if err != nil {
		t.Fatal(err)
	}
	o := p.opts
	if *o.MaxPoolSize != 7 || *o.MinPoolSize != 2 || *o.MaxConnIdleTime != time.Minute ||
		*o.ConnectTimeout != 3*time.Second || *o.ServerSelectionTimeout != 3*time.Second || p.dbName != "app" {
		t.Errorf("options: max %d, min %d, idle %s, connect %s, selection %s, db %q", *o.MaxPoolSize, *o.MinPoolSize,
			*o.MaxConnIdleTime, *o.ConnectTimeout, *o.ServerSelectionTimeout, p.dbName)
	}
	cfg.URL = "mongodb://u:sekrit@h:27017/app?maxPoolSize=3&connectTimeoutMS=1500"
	if p, err = parse(cfg); err != nil {
		t.Fatal(err)
	}
	if *p.opts.MaxPoolSize != 3 || *p.opts.ConnectTimeout != 1500*time.Millisecond {
		t.Errorf("the URL's parameters did not win: max %d, connect %s", *p.opts.MaxPoolSize, *p.opts.ConnectTimeout)
	}
}

// FuzzParse feeds arbitrary URLs to the parser Open uses: none may panic, and no error may
// show the password. mongodb+srv:// URLs are left out: the driver looks them up in DNS.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"mongodb://u:sekrit@h:27017/app", "mongodb://u:sekrit@h/app?maxPoolSize=many",
		"mongodb://u:sekrit@h:99999/app", "mongodb://u:sekrit@h1,h2/app?replicaSet=rs0&readPreference=secondary",
		"mongodb://u:sekrit@[::1/app", "mongodb://u:sekrit@h/app?authMechanism=NOPE", "mongodb://h", "postgres://u:sekrit@h/app",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if strings.Contains(strings.ToLower(raw), "+srv") {
			t.Skip("mongodb+srv:// is looked up in DNS")
		}
		_, err := parse(config.Database{URL: raw, MaxConnections: 2, ConnectTimeout: config.Duration(time.Second)})
		if err != nil && strings.Contains(raw, "//u:sekrit@") && strings.Contains(err.Error(), "sekrit") {
			t.Fatalf("error shows the password: %v", err)
		}
	})
}
