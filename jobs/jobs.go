package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Args are the arguments of one kind of job. Kind names the kind (stable: it is stored with
// every job and picks the worker); the value is stored as JSON.
//
//	type EmailArgs struct{ To, Subject string }
//	func (EmailArgs) Kind() string { return "email" }
type Args interface{ Kind() string }

// State is where a job is in its life.
type State string

// States. A job waiting for its run time, or for a retry after a failure, is available with a
// run_at in the future.
const (
	StateAvailable State = "available" // waiting to run at RunAt (first run, retry or snooze)
	StateRunning   State = "running"   // a worker holds its lease
	StateCompleted State = "completed" // its handler returned nil
	StateCancelled State = "cancelled" // cancelled by the API, the CLI or jobs.Cancel
	StateDiscarded State = "discarded" // failed every attempt; Errors says why
)

var allStates = []State{StateAvailable, StateRunning, StateCompleted, StateCancelled, StateDiscarded}

// ParseState returns the state named s.
func ParseState(s string) (State, error) {
	for _, st := range allStates {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("jobs: unknown state %q; use one of available, running, completed, cancelled, discarded", s)
}

// AttemptError is the error of one failed attempt, kept with the job.
type AttemptError struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
}

// JobRow is a job as stored: what Inspect and List return.
type JobRow struct {
	ID          int64             `json:"id"`
	Kind        string            `json:"kind"`
	Queue       string            `json:"queue"`
	State       State             `json:"state"`
	Priority    int               `json:"priority"`
	Attempt     int               `json:"attempt"`
	MaxAttempts int               `json:"max_attempts"`
	Args        json.RawMessage   `json:"args"`
	RunAt       time.Time         `json:"run_at"`
	CreatedAt   time.Time         `json:"created_at"`
	AttemptedAt *time.Time        `json:"attempted_at,omitempty"`
	FinalizedAt *time.Time        `json:"finalized_at,omitempty"`
	Worker      string            `json:"worker,omitempty"`
	UniqueKey   string            `json:"unique_key,omitempty"`
	Tags        []string          `json:"tags,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Timeout     time.Duration     `json:"timeout,omitempty"`
	Errors      []AttemptError    `json:"errors,omitempty"`
}

// Job is a job handed to its worker, with its arguments decoded.
type Job[T Args] struct {
	ID          int64
	Kind        string
	Queue       string
	Priority    int
	Attempt     int // 1 on the first run
	MaxAttempts int
	CreatedAt   time.Time
	Tags        []string
	Metadata    map[string]string
	Args        T
}

// Worker works jobs of one kind. A Worker may also implement [RetryPolicy] and [TimeoutPolicy]
// to set its kind's retries and timeout.
type Worker[T Args] interface {
	Work(ctx context.Context, job *Job[T]) error
}

// WorkerFunc is a function as a [Worker].
type WorkerFunc[T Args] func(ctx context.Context, job *Job[T]) error

// Work calls f.
func (f WorkerFunc[T]) Work(ctx context.Context, job *Job[T]) error { return f(ctx, job) }

// RetryPolicy is a kind's own retry policy (the seed's max_retries() and retry_delay()),
// implemented by its Worker or set with [WithRetries] and [WithBackoff] at Register.
type RetryPolicy interface {
	// MaxRetries is how many times a failing job is run again before it is discarded.
	MaxRetries() int
	// RetryDelay is the wait before retry number attempt (1 after the first failure).
	RetryDelay(attempt int) time.Duration
}

// TimeoutPolicy sets how long one run of a kind may take before its context is cancelled.
type TimeoutPolicy interface{ Timeout() time.Duration }

// Errors a handler returns to steer its job.
type snoozeError struct{ d time.Duration }

func (e *snoozeError) Error() string { return "jobs: snoozed for " + e.d.String() }

// Snooze returns an error that makes the job run again after d without spending an attempt.
func Snooze(d time.Duration) error {
	if d < 0 {
		d = 0
	}
	return &snoozeError{d}
}

type cancelError struct{ err error }

func (e *cancelError) Error() string {
	if e.err == nil {
		return "jobs: cancelled by its handler"
	}
	return "jobs: cancelled by its handler: " + e.err.Error()
}
func (e *cancelError) Unwrap() error { return e.err }

// Cancel returns an error that stops the job for good: it is recorded as cancelled with err,
// and never retried.
func Cancel(err error) error { return &cancelError{err} }

// Sentinel errors.
var (
	// ErrNotFound is returned for a job ID that does not exist.
	ErrNotFound = errors.New("jobs: no such job")
	// ErrUnknownKind is returned by Enqueue for a kind no worker was registered for, when the
	// client was built to check (the default).
	ErrUnknownKind = errors.New("jobs: unregistered kind")
	// ErrUnknownQueue is returned by Enqueue for a queue not in jobs.queues.
	ErrUnknownQueue = errors.New("jobs: unknown queue")
	// ErrJobCancelled is the cause of a running job's context when it was cancelled by
	// [Client.Cancel] or `shoal jobs cancel`.
	ErrJobCancelled = errors.New("jobs: job cancelled")
	// ErrLeaseLost is the cause of a running job's context when its worker could not renew its
	// lease in time and another worker may now run the job.
	ErrLeaseLost = errors.New("jobs: the job's lease was lost; another worker may run it")
	// ErrShutdown is the cause of a running job's context when the client stopped and the
	// shutdown timeout passed; the job is released to run again.
	ErrShutdown = errors.New("jobs: the client is shutting down; the job is released to run again")
	// ErrFinal is returned by Retry or Cancel for a job whose state does not allow it.
	ErrFinal = errors.New("jobs: the job's state does not allow it")
)
