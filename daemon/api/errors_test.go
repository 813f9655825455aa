package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"testing"
)

// A validation error crosses the wire whole: 400, kind "invalid", the
// fields in the body, and on the client a *ValidationError that is an
// ErrInvalid with the same fields and text.
func TestValidationErrorRoundTrip(t *testing.T) {
	err := Validate(NetworkCreate{}, []FieldError{
		{Field: "vni", Value: "16777216", Problem: "out of range", Accepted: "0-16777215"},
		{Field: "name", Value: "a b", Problem: "not a valid network name"},
	})
	wrapped := fmt.Errorf("create network: %w", err)
	code, body := Body(wrapped)
	if code != http.StatusBadRequest || body.Kind != KindInvalid || len(body.Fields) != 2 || body.Fields[0].Field != "name" {
		t.Fatalf("Body: %d %+v, want 400, invalid, name before vni", code, body)
	}
	b, jerr := json.Marshal(body)
	if jerr != nil {
		t.Fatal(jerr)
	}
	var got Error
	if jerr := json.Unmarshal(b, &got); jerr != nil {
		t.Fatal(jerr)
	}
	cerr := got.asError()
	var ve *ValidationError
	if !errors.As(cerr, &ve) || !errors.Is(cerr, ErrInvalid) {
		t.Fatalf("client error %v (%T): want a *ValidationError that is ErrInvalid", cerr, cerr)
	}
	if !reflect.DeepEqual(ve.Fields, body.Fields) || cerr.Error() != err.Error() {
		t.Fatalf("client error %q %+v, want %q %+v", cerr, ve.Fields, err, body.Fields)
	}
	want := `invalid request: name "a b": not a valid network name; vni "16777216": out of range; want 0-16777215`
	if err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
}

// Other errors keep their message and kind, with no fields.
func TestBodyPlainErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		code int
		kind string
	}{
		{fmt.Errorf("x: %w", ErrNotFound), 404, KindNotFound},
		{fmt.Errorf("x: %w", ErrConflict), 409, KindConflict},
		{fmt.Errorf("x: %w", ErrInvalid), 400, KindInvalid},
		{errors.New("disk full"), 500, KindInternal},
	} {
		code, body := Body(c.err)
		if code != c.code || body.Kind != c.kind || body.Message != c.err.Error() || body.Fields != nil {
			t.Errorf("Body(%v) = %d %+v, want %d %s", c.err, code, body, c.code, c.kind)
		}
		if back := body.asError(); back.Error() != c.err.Error() {
			t.Errorf("client error %q, want %q", back, c.err)
		}
	}
}

// No problems, no error; fields the request type lacks go last.
func TestValidateOrder(t *testing.T) {
	if err := Validate(NetworkCreate{}, nil); err != nil {
		t.Fatalf("Validate(no fields) = %v", err)
	}
	err := Validate(&NetworkCreate{}, []FieldError{{Field: "other"}, {Field: "peers", Value: "b"}, {Field: "subnet"}, {Field: "peers", Value: "a"}})
	var ve *ValidationError
	errors.As(err, &ve)
	var got []string
	for _, f := range ve.Fields {
		got = append(got, f.Field+f.Value)
	}
	if want := []string{"subnet", "peersb", "peersa", "other"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}
