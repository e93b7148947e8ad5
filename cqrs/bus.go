// Package cqrs separates writes from reads: a typed command bus and query bus with a
// middleware chain, an event bus for in-process handlers (and, configured, over package
// messaging), and projections that fold the event store into read models — inline in the
// append's transaction or asynchronously from a checkpoint — with rebuilds.
//
//	commands := cqrs.NewCommandBus(cqrs.Logging(logger), cqrs.Validation(), cqrs.RetryOnConflict(5))
//	cqrs.Register(commands, func(ctx context.Context, c OpenAccount) (AccountID, error) { … })
//	id, err := cqrs.Dispatch[OpenAccount, AccountID](ctx, commands, OpenAccount{Owner: "ada"})
//
//	queries := cqrs.NewQueryBus()
//	cqrs.RegisterQuery(queries, func(ctx context.Context, q GetAccount) (Account, error) { … })
//	acc, err := cqrs.Ask[GetAccount, Account](ctx, queries, GetAccount{ID: id})
//
// Handlers are found by the Go type of the command or query: one handler per type; a second
// registration and a dispatch of an unregistered type are errors that name the type.
package cqrs

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
)

// Errors of the buses.
var (
	// ErrNotRegistered is returned by Dispatch and Ask for a type with no handler.
	ErrNotRegistered = errors.New("no handler registered")
	// ErrAlreadyRegistered is returned by a second registration of a type.
	ErrAlreadyRegistered = errors.New("handler already registered")
	// ErrResultType is returned when the result type asked for is not the registered one.
	ErrResultType = errors.New("wrong result type")
)

// Kind tells commands from queries in middleware.
type Kind string

// Kinds.
const (
	KindCommand Kind = "command"
	KindQuery   Kind = "query"
)

// Message is what middleware sees of a command or query.
type Message struct {
	Kind Kind
	// Name is the Go type's name, e.g. "bank.Deposit".
	Name string
	// Value is the command or query.
	Value any
}

// HandlerFunc is a handler as the middleware chain sees it.
type HandlerFunc func(ctx context.Context, m Message) (any, error)

// Middleware wraps a handler: logging, validation, tracing, metrics, retries.
type Middleware func(next HandlerFunc) HandlerFunc

type entry struct {
	result reflect.Type
	call   HandlerFunc // the chain, built at registration
}

// bus is the command bus and the query bus.
type bus struct {
	kind     Kind
	mw       []Middleware
	mu       sync.RWMutex
	handlers map[reflect.Type]entry
}

func newBus(kind Kind, mw []Middleware) *bus {
	return &bus{kind: kind, mw: mw, handlers: map[reflect.Type]entry{}}
}

// CommandBus routes each command to its one handler.
type CommandBus struct{ b *bus }

// QueryBus routes each query to its one handler.
type QueryBus struct{ b *bus }

// NewCommandBus returns a command bus whose handlers run through mw, the first outermost.
func NewCommandBus(mw ...Middleware) *CommandBus { return &CommandBus{newBus(KindCommand, mw)} }

// NewQueryBus returns a query bus whose handlers run through mw, the first outermost.
func NewQueryBus(mw ...Middleware) *QueryBus { return &QueryBus{newBus(KindQuery, mw)} }

// TypeName is how the buses name a Go type in messages and metrics.
func TypeName(t reflect.Type) string {
	if t == nil {
		return "nil"
	}
	return t.String()
}

func register[C, R any](b *bus, h func(ctx context.Context, c C) (R, error)) error {
	t := reflect.TypeFor[C]()
	if h == nil {
		return fmt.Errorf("cqrs: registering a %s handler for %s: the handler is nil", b.kind, TypeName(t))
	}
	if t.Kind() == reflect.Interface {
		return fmt.Errorf("cqrs: %s type %s is an interface; register a concrete type", b.kind, TypeName(t))
	}
	var call HandlerFunc = func(ctx context.Context, m Message) (any, error) {
		c, ok := m.Value.(C)
		if !ok {
			return nil, fmt.Errorf("cqrs: middleware replaced the %s %s with a %T", b.kind, TypeName(t), m.Value)
		}
		return h(ctx, c)
	}
	for i := len(b.mw) - 1; i >= 0; i-- {
		call = b.mw[i](call)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, dup := b.handlers[t]; dup {
		return fmt.Errorf("cqrs: %w: %s %s already has a handler; register one handler per type", ErrAlreadyRegistered, b.kind, TypeName(t))
	}
	b.handlers[t] = entry{result: reflect.TypeFor[R](), call: call}
	return nil
}

func dispatch[C, R any](ctx context.Context, b *bus, c C) (R, error) {
	var zero R
	t := reflect.TypeFor[C]()
	b.mu.RLock()
	e, ok := b.handlers[t]
	b.mu.RUnlock()
	if !ok {
		verb := "Register"
		if b.kind == KindQuery {
			verb = "RegisterQuery"
		}
		return zero, fmt.Errorf("cqrs: %w for %s %s; register one with cqrs.%s", ErrNotRegistered, b.kind, TypeName(t), verb)
	}
	if rt := reflect.TypeFor[R](); rt != e.result {
		return zero, fmt.Errorf("cqrs: %w: the handler of %s %s returns %s, not %s", ErrResultType, b.kind, TypeName(t), TypeName(e.result), TypeName(rt))
	}
	if ctx == nil {
		ctx = context.Background()
	}
	v, err := e.call(ctx, Message{Kind: b.kind, Name: TypeName(t), Value: c})
	if r, ok := v.(R); ok {
		return r, err
	}
	return zero, err
}

// Register makes h the handler of commands of type C. A second handler for C is an error
// (ErrAlreadyRegistered).
func Register[C, R any](b *CommandBus, h func(ctx context.Context, cmd C) (R, error)) error {
	return register(b.b, h)
}

// MustRegister is Register that panics on error, for start-up code.
func MustRegister[C, R any](b *CommandBus, h func(ctx context.Context, cmd C) (R, error)) {
	if err := Register(b, h); err != nil {
		panic(err)
	}
}

// Dispatch runs cmd through the middleware to its handler and returns the handler's result.
// An unregistered type is ErrNotRegistered; R other than the registered result type is
// ErrResultType.
func Dispatch[C, R any](ctx context.Context, b *CommandBus, cmd C) (R, error) {
	return dispatch[C, R](ctx, b.b, cmd)
}

// RegisterQuery makes h the handler of queries of type Q.
func RegisterQuery[Q, R any](b *QueryBus, h func(ctx context.Context, q Q) (R, error)) error {
	return register(b.b, h)
}

// MustRegisterQuery is RegisterQuery that panics on error, for start-up code.
func MustRegisterQuery[Q, R any](b *QueryBus, h func(ctx context.Context, q Q) (R, error)) {
	if err := RegisterQuery(b, h); err != nil {
		panic(err)
	}
}

// Ask runs q through the middleware to its handler and returns the answer.
func Ask[Q, R any](ctx context.Context, b *QueryBus, q Q) (R, error) {
	return dispatch[Q, R](ctx, b.b, q)
}

// Registered lists the registered command types.
func (b *CommandBus) Registered() []string { return b.b.names() }

// Registered lists the registered query types.
func (b *QueryBus) Registered() []string { return b.b.names() }

func (b *bus) names() []string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]string, 0, len(b.handlers))
	for t := range b.handlers {
		out = append(out, TypeName(t))
	}
	return out
}
