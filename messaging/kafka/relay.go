package kafka

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// relay moves delayed records from the delay topics to their own topics when they fall due.
// It is a consumer group ("<prefix>._delay"), so one Driver at a time relays each
// partition; each partition has a goroutine, since each delay topic's head is its earliest.
type relay struct {
	d    *Driver
	cl   *kgo.Client
	stop chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	parts map[tp]*relayPart
}

type relayPart struct {
	mu     sync.Mutex
	cond   *sync.Cond
	recs   []*kgo.Record
	paused bool
	quit   bool
}

func (d *Driver) startRelay() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.relay != nil || d.closed {
		return nil
	}
	r := &relay{d: d, stop: make(chan struct{}), parts: map[tp]*relayPart{}}
	cl, err := d.opts.client(kgo.ConsumeRegex(), kgo.ConsumeTopics("^"+regexpQuote(d.opts.Prefix)+`\.`+delayToken+`\.[0-9]+$`),
		kgo.ConsumerGroup(d.opts.Prefix+"."+delayToken), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(d.opts.SessionTimeout), kgo.AutoCommitMarks(), kgo.AutoCommitInterval(d.opts.CommitInterval),
		kgo.OnPartitionsRevoked(r.revoked), kgo.OnPartitionsLost(r.revoked), kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return err
	}
	r.cl = cl
	d.relay = r
	r.wg.Add(1)
	go r.run()
	return nil
}

func regexpQuote(s string) string {
	out := ""
	for _, c := range s {
		if c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			out += string(c)
		} else {
			out += `\` + string(c)
		}
	}
	return out
}

func (r *relay) run() {
	defer r.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-r.stop
		cancel()
	}()
	for {
		fs := r.cl.PollFetches(ctx)
		if fs.IsClientClosed() || ctx.Err() != nil {
			return
		}
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			k := tp{p.Topic, p.Partition}
			r.mu.Lock()
			rp := r.parts[k]
			if rp == nil {
				rp = &relayPart{}
				rp.cond = sync.NewCond(&rp.mu)
				r.parts[k] = rp
				r.wg.Add(1)
				go r.work(k, rp)
			}
			r.mu.Unlock()
			rp.mu.Lock()
			rp.recs = append(rp.recs, p.Records...)
			if len(rp.recs) > 1000 && !rp.paused {
				rp.paused = true
				r.cl.PauseFetchPartitions(map[string][]int32{k.topic: {k.partition}})
			}
			rp.mu.Unlock()
			rp.cond.Broadcast()
		})
	}
}

// work relays one partition's records in order, each when it falls due.
func (r *relay) work(k tp, rp *relayPart) {
	defer r.wg.Done()
	for {
		rp.mu.Lock()
		for len(rp.recs) == 0 && !rp.quit {
			rp.cond.Wait()
		}
		if rp.quit {
			rp.mu.Unlock()
			return
		}
		rec := rp.recs[0]
		rp.mu.Unlock()
		var target string
		due := time.Time{}
		headers := rec.Headers[:0:0]
		for _, h := range rec.Headers {
			switch h.Key {
			case headerTarget:
				target = string(h.Value)
			case headerDeliverAt:
				if ms, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
					due = time.UnixMilli(ms)
				}
			default:
				headers = append(headers, h)
			}
		}
		if wait := time.Until(due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-r.stop:
				t.Stop()
				return
			}
		}
		if target != "" {
			out := &kgo.Record{Topic: target, Key: rec.Key, Value: rec.Value, Headers: headers, Timestamp: rec.Timestamp}
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := r.d.ensureTopics(ctx, map[string]bool{target: true})
				if err == nil {
					err = r.d.pub.ProduceSync(ctx, out).FirstErr()
				}
				cancel()
				if err == nil {
					break
				}
				select {
				case <-time.After(time.Second):
				case <-r.stop:
					return
				}
			}
		}
		r.cl.MarkCommitRecords(rec)
		rp.mu.Lock()
		rp.recs[0] = nil
		rp.recs = rp.recs[1:]
		if rp.paused && len(rp.recs) < 100 {
			rp.paused = false
			r.cl.ResumeFetchPartitions(map[string][]int32{k.topic: {k.partition}})
		}
		rp.mu.Unlock()
	}
}

// revoked ends the workers of partitions given up; their unrelayed records go to the next
// owner (a record relayed but not committed is relayed again: at least once).
func (r *relay) revoked(ctx context.Context, cl *kgo.Client, ps map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for t, parts := range ps {
		for _, n := range parts {
			k := tp{t, n}
			if rp := r.parts[k]; rp != nil {
				rp.mu.Lock()
				rp.quit = true
				rp.mu.Unlock()
				rp.cond.Broadcast()
				delete(r.parts, k)
			}
		}
	}
}

func (r *relay) close() {
	close(r.stop)
	r.mu.Lock()
	for _, rp := range r.parts {
		rp.mu.Lock()
		rp.quit = true
		rp.mu.Unlock()
		rp.cond.Broadcast()
	}
	r.mu.Unlock()
	r.cl.Close()
	r.wg.Wait()
}
