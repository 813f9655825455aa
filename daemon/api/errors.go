package api

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
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
	// Fields, for an invalid request, name each offending field of the
	// request, in the order of the request type's fields.
	Fields []FieldError `json:"fields,omitempty"`
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
	if e.Kind == KindInvalid && len(e.Fields) > 0 {
		return &ValidationError{Fields: e.Fields}
	}
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

// FieldError is one problem with one field of a request. Field is the
// field's JSON name in the request type ("vni", "key_file"), so that every
// client can map it to its own words: the CLI prints its flag (--vni).
// Other fields named in Problem or Accepted are written between
// backquotes, like `tunnel`, for the same reason.
type FieldError struct {
	// Field is the JSON name of the offending field.
	Field string `json:"field"`
	// Value is the value given, as text; empty when the problem is that
	// the field was given at all, or not given.
	Value string `json:"value,omitempty"`
	// Problem says what is wrong, without naming the field again.
	Problem string `json:"problem"`
	// Accepted says what would be accepted instead, if that helps.
	Accepted string `json:"accepted,omitempty"`
}

// String renders the problem as one line: `vni "16777216": out of range;
// want 0-16777215`.
func (f FieldError) String() string {
	return f.Render(f.Field)
}

// Render is String with the field called name (a client's own word for
// it, like "--vni").
func (f FieldError) Render(name string) string {
	var b strings.Builder
	b.WriteString(name)
	if f.Value != "" {
		fmt.Fprintf(&b, " %q", f.Value)
	}
	b.WriteString(": ")
	b.WriteString(f.Problem)
	if f.Accepted != "" {
		b.WriteString("; want ")
		b.WriteString(f.Accepted)
	}
	return b.String()
}

// ValidationError is a request with one or more invalid fields. Fields
// come in a fixed order, the order of the request type's fields, so the
// same request always gets the same answer. It is an ErrInvalid (HTTP
// 400), on the server and, rebuilt from the answer, on the client.
type ValidationError struct {
	Fields []FieldError
}

// Error lists every problem on one line, separated by "; ".
func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.String()
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// Is makes a ValidationError an ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Body returns the answer the server sends for err: its HTTP status and
// the Error body, with the fields of a ValidationError in it.
func Body(err error) (int, Error) {
	code, kind := Classify(err)
	body := Error{Message: err.Error(), Kind: kind}
	var ve *ValidationError
	if errors.As(err, &ve) {
		body.Fields = ve.Fields
	}
	return code, body
}

// Validate returns nil if fields is empty, or else a ValidationError
// with fields in the order req's type declares them (a field req does not
// have goes last); problems with one field keep their order. req is the
// request value or a pointer to it.
func Validate(req any, fields []FieldError) error {
	if len(fields) == 0 {
		return nil
	}
	order := jsonFieldOrder(reflect.TypeOf(req))
	rank := func(f FieldError) int {
		if i, ok := order[f.Field]; ok {
			return i
		}
		return len(order)
	}
	sorted := slices.Clone(fields)
	slices.SortStableFunc(sorted, func(a, b FieldError) int { return rank(a) - rank(b) })
	return &ValidationError{Fields: sorted}
}

// jsonFieldOrder maps the JSON names of t's fields to their position.
func jsonFieldOrder(t reflect.Type) map[string]int {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	order := map[string]int{}
	if t == nil || t.Kind() != reflect.Struct {
		return order
	}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			order[name] = i
		}
	}
	return order
}
