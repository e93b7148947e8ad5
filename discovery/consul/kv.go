package consul

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// KeyEvent is a state of a watched key of Consul's KV store: its value, or
// that it does not exist, or an error (the watcher keeps the last value).
type KeyEvent struct {
	// Value of the key; nil when it does not exist (or on an error).
	Value []byte
	// Exists is false when the key is not in the store.
	Exists bool
	// Index is the key's ModifyIndex; 0 when it does not exist.
	Index uint64
	// Err is the failure of a query; the watch keeps trying.
	Err error
}

// WatchKey follows key of Consul's KV store — the seed's key-value
// configuration sharing, service_discovery.consul.config_key — with blocking
// queries, until ctx is done. The first event is the key's value (or its
// absence, or why it cannot be read); then an event follows every change of
// the value or of its existence, and every error (after which the next good
// answer is sent even if unchanged). Events are not coalesced: read them.
func WatchKey(ctx context.Context, opts Options, key string) (<-chan KeyEvent, error) {
	if key == "" || strings.HasPrefix(key, "/") {
		return nil, fmt.Errorf("consul: config key %q must be a non-empty KV path without a leading /, e.g. \"config/api\"", key)
	}
	if opts.Service == "" {
		opts.Service = "-" // a key watch needs no service
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	c, err := opts.client()
	if err != nil {
		return nil, err
	}
	ch := make(chan KeyEvent)
	go func() {
		defer close(ch)
		send := func(ev KeyEvent) bool {
			select {
			case ch <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		var index uint64
		var last *KeyEvent
		backoff := 100 * time.Millisecond
		for ctx.Err() == nil {
			q := (&api.QueryOptions{WaitIndex: index, WaitTime: opts.WaitTime}).WithContext(ctx)
			pair, meta, err := c.KV().Get(key, q)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				last = nil
				if !send(KeyEvent{Err: fmt.Errorf("consul %s: reading key %q: %w", opts.Address, key, err)}) || !sleep(ctx, backoff) {
					return
				}
				backoff = min(backoff*2, opts.RetryMax)
				continue
			}
			backoff = 100 * time.Millisecond
			ev := KeyEvent{}
			if pair != nil {
				ev = KeyEvent{Value: pair.Value, Exists: true, Index: pair.ModifyIndex}
				if ev.Value == nil {
					ev.Value = []byte{}
				}
			}
			if last == nil || last.Exists != ev.Exists || !bytes.Equal(last.Value, ev.Value) {
				if !send(ev) {
					return
				}
				last = &ev
			}
			index = nextIndex(index, meta.LastIndex)
		}
	}()
	return ch, nil
}

// ReadKey reads key of Consul's KV store once; ok is false when it does not
// exist.
func ReadKey(ctx context.Context, opts Options, key string) (value []byte, ok bool, err error) {
	if opts.Service == "" {
		opts.Service = "-"
	}
	if err := opts.Validate(); err != nil {
		return nil, false, err
	}
	opts.setDefaults()
	c, err := opts.client()
	if err != nil {
		return nil, false, err
	}
	pair, _, err := c.KV().Get(key, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, false, fmt.Errorf("consul %s: reading key %q: %w", opts.Address, key, err)
	}
	if pair == nil {
		return nil, false, nil
	}
	return pair.Value, true, nil
}
