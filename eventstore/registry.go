package eventstore

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
)

// Registry maps event type names to Go types, to encode typed events for Append and decode
// stored ones. It is safe for concurrent use; register everything at start-up.
//
//	reg := eventstore.NewRegistry()
//	eventstore.MustRegister[AccountOpened](reg, "AccountOpened")
//	data, _ := reg.Encode(AccountOpened{Owner: "ada"})   // EventData{Type: "AccountOpened", …}
//	v, _ := reg.Decode(recorded)                          // AccountOpened{Owner: "ada"}
type Registry struct {
	mu     sync.RWMutex
	byName map[string]reflect.Type
	byType map[reflect.Type]string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byName: map[string]reflect.Type{}, byType: map[reflect.Type]string{}}
}

// Register registers E (a struct or other JSON-encodable type, not a pointer) as the Go
// type of events named name. Registering a name or a type twice is an error.
func Register[E any](r *Registry, name string) error {
	t := reflect.TypeFor[E]()
	if t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface {
		return fmt.Errorf("register event %q: %s is a pointer or interface; register the value type", name, t)
	}
	if err := ValidateType(name); err != nil {
		return fmt.Errorf("register event: the event %v", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.byName[name]; ok {
		return fmt.Errorf("register event %q: already registered for %s", name, old)
	}
	if old, ok := r.byType[t]; ok {
		return fmt.Errorf("register event %q: %s is already registered as %q", name, t, old)
	}
	r.byName[name], r.byType[t] = t, name
	return nil
}

// MustRegister is Register that panics on error, for start-up code.
func MustRegister[E any](r *Registry, name string) {
	if err := Register[E](r, name); err != nil {
		panic(err)
	}
}

// Name returns the type name v's Go type is registered under (v may be a pointer to it).
func (r *Registry) Name(v any) (string, error) {
	t := reflect.TypeOf(v)
	if t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	r.mu.RLock()
	name, ok := r.byType[t]
	r.mu.RUnlock()
	if !ok {
		return "", &UnknownTypeError{Type: fmt.Sprint(t), Encoding: true}
	}
	return name, nil
}

// Encode returns v as an event to append, with a new ID. v's type must be registered.
func (r *Registry) Encode(v any) (EventData, error) {
	name, err := r.Name(v)
	if err != nil {
		return EventData{}, err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return EventData{}, fmt.Errorf("encoding event %q: %w", name, err)
	}
	return EventData{ID: NewID(), Type: name, Data: data}, nil
}

// Decode returns the stored event's data as a value of its registered Go type (not a
// pointer): an *UnknownTypeError when no type is registered for it, a *DecodeError when
// the data does not decode into it.
func (r *Registry) Decode(e RecordedEvent) (any, error) {
	r.mu.RLock()
	t, ok := r.byName[e.Type]
	r.mu.RUnlock()
	if !ok {
		return nil, &UnknownTypeError{Type: e.Type, Position: e.Position, Stream: e.Stream}
	}
	p := reflect.New(t)
	if err := json.Unmarshal(e.Data, p.Interface()); err != nil {
		return nil, &DecodeError{Type: e.Type, Stream: e.Stream, Position: e.Position, Version: e.Version, Err: err}
	}
	return p.Elem().Interface(), nil
}

// Known reports whether events named name have a registered type.
func (r *Registry) Known(name string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.byName[name]
	return ok
}

// Types returns the registered type names.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.byName))
	for n := range r.byName {
		out = append(out, n)
	}
	return out
}
