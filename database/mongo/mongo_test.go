package mongo_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"
	drv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/database/mongo"
)

// There is no MongoDB server on this machine: these tests run against FerretDB v1 in process,
// on SQLite. It speaks MongoDB's wire protocol — CRUD, indexes, duplicate-key errors — but has
// no transactions, no change streams and no authentication, so those cases are skipped (see
// docs/architecture.md for what that leaves untested).

var (
	ferretOnce sync.Once
	ferretURI  string
	ferretErr  error
	stopFerret func()
)

// ferret starts one FerretDB for the package's tests.
func ferret(t *testing.T) string {
	t.Helper()
	ferretOnce.Do(func() {
		dir, err := osMkdirTemp()
		if err != nil {
			ferretErr = err
			return
		}
		f, err := ferretdb.New(&ferretdb.Config{
			Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
			Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
			Handler:   "sqlite",
			SQLiteURL: "file:" + dir + "/",
		})
		if err != nil {
			ferretErr = err
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = f.Run(ctx) }()
		ferretURI = f.MongoDBURI()
		stopFerret = func() { cancel(); <-done; osRemoveAll(dir) }
	})
	if ferretErr != nil {
		t.Fatalf("starting FerretDB: %v", ferretErr)
	}
	return ferretURI
}

var dbSeq atomic.Int64

// cfgFor names a database of the test's own: FerretDB lives as long as the test binary.
func cfgFor(uri, db string) config.Database {
	db = fmt.Sprintf("%s_%d_%d", db, os.Getpid(), dbSeq.Add(1))
	return config.Database{URL: strings.TrimSuffix(uri, "/") + "/" + db, MaxConnections: 4, MinConnections: 0,
		ConnectTimeout: config.Duration(5 * time.Second), IdleTimeout: config.Duration(time.Minute)}
}

func open(t *testing.T, name string) *mongo.Client {
	t.Helper()
	c, err := mongo.Open(context.Background(), cfgFor(ferret(t), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func TestOpen_CRUDAndErrors(t *testing.T) {
	c := open(t, "crud")
	ctx := context.Background()
	users := c.Database().Collection("users")
	if _, err := users.Indexes().CreateOne(ctx, drv.IndexModel{Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetUnique(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := users.InsertOne(ctx, bson.M{"email": "a@example.com", "n": 1}); err != nil {
		t.Fatal(err)
	}
	_, err := users.InsertOne(ctx, bson.M{"email": "a@example.com", "n": 2})
	if !errors.Is(mongo.Classify(err), database.ErrUniqueViolation) {
		t.Errorf("duplicate email: %v, want ErrUniqueViolation", err)
	}
	var got bson.M
	if err := users.FindOne(ctx, bson.M{"email": "a@example.com"}).Decode(&got); err != nil || got["n"] != int32(1) {
		t.Fatalf("find: %v %v", got, err)
	}
	err = users.FindOne(ctx, bson.M{"email": "nobody"}).Decode(&got)
	if !errors.Is(mongo.Classify(err), database.ErrNotFound) {
		t.Errorf("no document: %v, want ErrNotFound", err)
	}
	if mongo.Classify(nil) != nil {
		t.Error("Classify(nil)")
	}
	if err := c.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestOpen_PoolSettingsAndMetrics(t *testing.T) {
	cfg := cfgFor(ferret(t), "pool")
	cfg.MaxConnections = 2
	c, err := mongo.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	coll := c.Database().Collection("p")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := coll.InsertOne(context.Background(), bson.M{"i": i}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	st := c.Stats()
	if st.Max != 2 || st.Open > 2 || st.Open < 1 || st.InUse != 0 {
		t.Errorf("pool after 8 concurrent inserts with max_connections 2: %+v", st)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"shoal_db_pool_open_connections", "shoal_db_pool_max_connections", "shoal_db_pool_acquire_seconds"} {
		if !names[n] {
			t.Errorf("no %s in %v", n, names)
		}
	}
}

func TestOpen_BadInput(t *testing.T) {
	dead := func() string {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return l.Addr().String()
	}()
	for _, c := range []struct {
		name string
		cfg  config.Database
		is   error
		says string
	}{
		{"empty", config.Database{}, database.ErrBadURL, "database.url is empty"},
		{"not mongodb", config.Database{URL: "postgres://u:hunter2@h/db"}, database.ErrBadURL, "not a mongodb://"},
		{"no database", config.Database{URL: "mongodb://u:hunter2@h:27017"}, database.ErrBadURL, "names no database"},
		{"bad option", config.Database{URL: "mongodb://u:hunter2@h:27017/db?maxPoolSize=many"}, database.ErrBadURL, "cannot be used"},
		{"read replicas", config.Database{URL: "mongodb://u:hunter2@h/db", ReadReplicas: []string{"mongodb://r/db"}}, database.ErrBadURL, "readPreference"},
		{"unreachable", config.Database{URL: "mongodb://u:hunter2@" + dead + "/db", ConnectTimeout: config.Duration(500 * time.Millisecond)}, database.ErrUnreachable, "cannot be reached"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := mongo.Open(context.Background(), c.cfg)
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.says) || strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("%v; want %v saying %q, password masked", err, c.is, c.says)
			}
		})
	}
}

func TestWithTransaction(t *testing.T) {
	t.Skip("FerretDB v1 has no transactions (it needs a replica set's sessions); WithTransaction is untested here")
}

func TestChangeStreams(t *testing.T) {
	t.Skip("FerretDB v1 has no change streams; nothing in this package uses them")
}
