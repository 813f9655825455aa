package api

import (
	"errors"
	"net/http"
)

// Error kinds. Server-side errors wrap one of these; the client's errors
// wrap the same one, so callers can branch with errors.Is on either side.
var (
	// ErrInvalid: the request is malformed (a subnet that does not parse,
	// a gateway outside its subnet, a missing namespace path). HTTP 400.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound: no such network or endpoint. HTTP 404.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request clashes with what exists (a name taken, an
	// address in use, overlapping subnets, a network still in use). HTTP 409.
	ErrConflict = errors.New("conflict")
)

// Error is the body of every non-2xx response.
type Error struct {
	// Message is one line naming the input and what is accepted.
	Message string `json:"message"`
	// Kind is "invalid", "not_found", "conflict" or "internal".
	Kind string `json:"kind"`
}

// Kinds as they appear in Error.Kind.
const (
	KindInvalid  = "invalid"
	KindNotFound = "not_found"
	KindConflict = "conflict"
	KindInternal = "internal"
)

// Classify returns the HTTP status and kind for a server-side error.
func Classify(err error) (int, string) {
	switch {
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest, KindInvalid
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, KindNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict, KindConflict
	}
	return http.StatusInternalServerError, KindInternal
}

// remoteError is an Error received by the client. Its text is the
// server's message alone; it wraps the sentinel of its kind.
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }

func (e Error) asError() error {
	var kind error
	switch e.Kind {
	case KindInvalid:
		kind = ErrInvalid
	case KindNotFound:
		kind = ErrNotFound
	case KindConflict:
		kind = ErrConflict
	}
	return &remoteError{msg: e.Message, kind: kind}
}
