package proxy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoal-sh/shoal/discovery"
)

func TestProxy_WebSocketEcho(t *testing.T) {
	t.Parallel()
	ws := startBackend(t, "ws", websocket.Handler(func(c *websocket.Conn) {
		var msg string
		for websocket.Message.Receive(c, &msg) == nil {
			websocket.Message.Send(c, "echo: "+msg)
		}
	}).ServeHTTP)
	h := startProxy(t, noHealth(Options{Algorithm: "least_connections"}), ws)
	conn, err := websocket.Dial("ws://"+h.addr+"/socket", "", "http://"+h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := 0; i < 3; i++ {
		if err := websocket.Message.Send(conn, fmt.Sprintf("hello %d", i)); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := websocket.Message.Receive(conn, &got); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("echo: hello %d", i); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	// The open WebSocket counts as in flight for least_connections.
	if s := statusOf(h.p, "ws"); s.InFlight != 1 {
		t.Errorf("in flight during a WebSocket session = %d, want 1", s.InFlight)
	}
}

func TestProxy_StreamsResponsesAsTheyCome(t *testing.T) {
	t.Parallel()
	next := make(chan struct{})
	stream := startBackend(t, "stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "data: event %d\n\n", i)
			http.NewResponseController(w).Flush()
			select {
			case <-next: // the client saw this event; only then send the next one
			case <-time.After(5 * time.Second):
				return
			}
		}
	})
	h := startProxy(t, noHealth(Options{}), stream)
	resp, err := client.Get(h.url + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := 0; i < 3; i++ {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("event %d did not arrive before the next was sent: %v", i, err)
		}
		if want := fmt.Sprintf("data: event %d\n", i); line != want {
			t.Fatalf("got %q, want %q", line, want)
		}
		br.ReadString('\n')
		next <- struct{}{}
	}
}

// startGRPC runs a real gRPC server (the standard health service) on loopback.
func startGRPC(t *testing.T) (*health.Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		grpc.SetTrailer(ctx, metadata.Pairs("x-served-by", "grpc-backend"))
		return h(ctx, req)
	}))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return hs, ln.Addr().String()
}

func TestProxy_GRPCUnaryAndServerStreaming(t *testing.T) {
	t.Parallel()
	hs, addr := startGRPC(t)
	hs.SetServingStatus("shop", healthpb.HealthCheckResponse_SERVING)
	h := startProxy(t, noHealth(Options{H2C: true})) // a gRPC server has no HTTP health path
	h.p.Update([]discovery.Instance{{ID: "grpc", URL: &url.URL{Scheme: "http", Host: addr}, Weight: 1}})

	conn, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Unary, with a trailer from the server.
	var trailer metadata.MD
	resp, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: "shop"}, grpc.Trailer(&trailer))
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("unary through the proxy: %v %v", resp, err)
	}
	if got := trailer.Get("x-served-by"); len(got) != 1 || got[0] != "grpc-backend" {
		t.Errorf("trailers lost by the proxy: %v", trailer)
	}
	// grpc-status travels in trailers: an error status must arrive intact.
	_, err = c.Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("grpc-status through the proxy: %v, want NotFound", err)
	}

	// Server streaming: each status change arrives as it happens.
	stream, err := c.Watch(ctx, &healthpb.HealthCheckRequest{Service: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || first.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first streamed message: %v %v", first, err)
	}
	hs.SetServingStatus("shop", healthpb.HealthCheckResponse_NOT_SERVING)
	second, err := stream.Recv()
	if err != nil || second.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("second streamed message: %v %v", second, err)
	}
}

func TestProxy_ErrorsAreJSONAndSayWhy(t *testing.T) {
	t.Parallel()
	dead := startBackend(t, "dead", nil)
	dead.kill()
	h := startProxy(t, noHealth(Options{MaxFailures: 0}), dead)
	body, resp := get(t, h.url+"/")
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Content-Type") != "application/json" ||
		!strings.Contains(body, `"instance":"dead"`) || !strings.Contains(body, "connection refused") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}
